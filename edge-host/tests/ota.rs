//! Signed deployments swap the running component between calls; bad ones are rejected and
//! the old component keeps running.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use ed25519_compact::{KeyPair, Seed};
use embedded_storage::nor_flash::{ErrorType, NorFlash, ReadNorFlash};
use wasmflo_edge::ota::{Deployer, Deployment, Envelope, Manifest, OtaError};
use wasmflo_edge::store::{
    DeploymentStore, FileDeploymentStore, FlashDeploymentStore, MemoryDeploymentStore,
    MemoryNorFlash, MemoryNorFlashError, StoreError, Stored,
};
use wasmflo_edge::{Engine, FaultKind, Limits, Message, Participant};

struct Signed {
    manifest: Vec<u8>,
    signature: Vec<u8>,
    component: Vec<u8>,
}

impl Signed {
    fn new(keys: &KeyPair, role: &str, sequence: u64, component: &[u8]) -> Self {
        let manifest = Manifest::for_component(role, sequence, component)
            .to_text()
            .into_bytes();
        let signature = keys.sk.sign(&manifest, None).to_vec();
        Signed {
            manifest,
            signature,
            component: component.to_vec(),
        }
    }

    fn deployment(&self) -> Deployment<'_> {
        Deployment {
            manifest: &self.manifest,
            signature: &self.signature,
            component: &self.component,
        }
    }
}

fn keys(seed: u8) -> KeyPair {
    KeyPair::from_seed(Seed::new([seed; 32]))
}

fn out(p: &mut Participant, payload: &str) -> Vec<u8> {
    let outcome = p.process("in", &Message::json_text(payload));
    outcome
        .outputs
        .first()
        .map(|(_, m)| m.data.clone())
        .unwrap_or_default()
}

#[test]
fn signed_deployments_swap_and_bad_ones_keep_the_old_component() {
    let repeat = std::fs::read(common::component("core/Repeat")).expect("read");
    let format = std::fs::read(common::component("temperature/Format")).expect("read");
    let trusted = keys(1);
    let (mut p, _) = Participant::new(&Engine::new(), &repeat, Limits::default()).expect("load");
    let bad = Signed::new(&trusted, "fmt", 1, &format);
    assert_eq!(
        p.deploy(&bad.deployment()).err(),
        Some(OtaError::NotAccepted)
    );
    p.accept_deployments(Deployer::new("fmt", vec![*trusted.pk], 0, 256 * 1024));
    assert_eq!(out(&mut p, "22.3333"), b"22.3333");

    // Signed by an unknown key, for another role, tampered, too large, not a component.
    let stranger = Signed::new(&keys(2), "fmt", 1, &format);
    assert_eq!(
        p.deploy(&stranger.deployment()).err(),
        Some(OtaError::BadSignature)
    );
    let other_role = Signed::new(&trusted, "display", 1, &format);
    assert!(matches!(
        p.deploy(&other_role.deployment()),
        Err(OtaError::WrongRole { .. })
    ));
    let mut tampered = Signed::new(&trusted, "fmt", 1, &format);
    tampered.component[1000] ^= 1;
    assert_eq!(
        p.deploy(&tampered.deployment()).err(),
        Some(OtaError::Mismatch)
    );
    let mut forged = Signed::new(&trusted, "fmt", 1, &format);
    forged.manifest = Manifest::for_component("fmt", 9, &format)
        .to_text()
        .into_bytes();
    assert_eq!(
        p.deploy(&forged.deployment()).err(),
        Some(OtaError::BadSignature)
    );
    let huge = Signed::new(&trusted, "fmt", 1, &vec![0u8; 300 * 1024]);
    assert!(matches!(
        p.deploy(&huge.deployment()),
        Err(OtaError::TooLarge { .. })
    ));
    let junk = Signed::new(&trusted, "fmt", 1, b"\0asm\x01\0\0\0");
    assert!(matches!(
        p.deploy(&junk.deployment()),
        Err(OtaError::Load(_))
    ));
    assert_eq!(
        out(&mut p, "22.3333"),
        b"22.3333",
        "the old component keeps running"
    );
    assert_eq!(p.sequence(), Some(0));

    // A good one swaps in at the next call; replaying it (or an older one) is refused.
    let good = Signed::new(&trusted, "fmt", 1, &format);
    p.deploy(&good.deployment()).expect("deploy");
    assert_eq!(out(&mut p, "22.3333"), b"\"Temperature: 22.3 C\"");
    assert_eq!(p.component().definition().component, "temperature/Format");
    assert_eq!(p.sequence(), Some(1));
    assert!(matches!(
        p.deploy(&good.deployment()),
        Err(OtaError::Replay {
            sequence: 1,
            current: 1
        })
    ));
    let back = Signed::new(&trusted, "fmt", 2, &repeat);
    p.deploy(&back.deployment()).expect("deploy");
    assert_eq!(out(&mut p, "1"), b"1");
}

#[allow(clippy::expect_used, reason = "test helper")]
fn unhex32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex");
    }
    out
}

#[test]
fn the_server_hosts_envelopes_verify_here_and_parameters_carry_over() {
    let format = std::fs::read(common::component("temperature/Format")).expect("read");
    let key = wasmflo_host::deploy::SigningKey::from_seed([3; 32]);
    let bytes = key.envelope("fmt", 4, &format);
    let envelope = Envelope::parse(&bytes).expect("parses");
    assert_eq!(envelope.component, &format[..]);
    assert_eq!(
        Manifest::parse(envelope.manifest),
        Ok(Manifest::for_component("fmt", 4, &format))
    );
    assert_eq!(envelope.to_bytes(), bytes);

    let (mut p, _) = Participant::new(&Engine::new(), &format, Limits::default()).expect("load");
    let trusted = unhex32(&key.public_hex());
    p.accept_deployments(Deployer::new("fmt", vec![trusted], 0, 1 << 20));
    assert!(
        p.process("unit", &Message::json_text("\"F\""))
            .result
            .is_ok()
    );
    let calls = p.deploy(&envelope.deployment()).expect("deploy");
    let ports: Vec<&str> = calls.iter().map(|(port, _)| port.as_str()).collect();
    assert_eq!(
        ports,
        ["start", "unit"],
        "the new instance gets the parameter"
    );
    assert_eq!(out(&mut p, "22.3333"), b"\"Temperature: 72.2 F\"");
    assert_eq!(p.sequence(), Some(4));
}

#[test]
fn a_poisoned_instance_is_recreated_with_its_parameters() {
    let hostile = std::fs::read(common::test_guest("test/Hostile")).expect("read");
    let (mut p, _) = Participant::new(&Engine::new(), &hostile, Limits::default()).expect("load");
    assert!(p.process("param", &Message::json_text("5")).result.is_ok());
    let json = |bytes: Vec<u8>| serde_json::from_slice::<serde_json::Value>(&bytes).expect("JSON");
    assert_eq!(
        json(out(&mut p, "\"a\"")),
        serde_json::json!({"echo": "a", "param": 5, "count": 1})
    );
    assert!(
        p.process("param", &Message::json_text("nope"))
            .result
            .is_err()
    );
    let trapped = p.process("in", &Message::json_text("\"trap\""));
    assert_eq!(trapped.result.expect_err("traps").kind, FaultKind::Trap);
    let restarts = p.take_restarts();
    let ports: Vec<&str> = restarts.iter().map(|(port, _)| port.as_str()).collect();
    assert_eq!(ports, ["start", "param"]);
    assert_eq!(p.recreated(), 1);
    assert_eq!(
        json(out(&mut p, "\"b\"")),
        serde_json::json!({"echo": "b", "param": 5, "count": 1})
    );
}

/// A store whose writes fail, as a worn-out flash would.
struct BrokenStore;

impl DeploymentStore for BrokenStore {
    fn load(&mut self) -> Result<Option<Stored>, StoreError> {
        Ok(None)
    }

    fn store(&mut self, _: u64, _: &[u8]) -> Result<(), StoreError> {
        Err(StoreError::Io {
            op: "write",
            at: "flash".into(),
            detail: "worn out".into(),
        })
    }
}

/// The participant a restart makes from what a store kept: the formatter of deployment 5,
/// which it runs, and whose deployment, seen again, it refuses as a replay.
#[allow(clippy::expect_used, reason = "test helper")]
fn restarted_with_formatter_at_5(d: Deployer, stored: Stored, five: &Signed) -> Participant {
    let (mut p, _) = Participant::new(
        &Engine::new(),
        &stored.component.expect("component kept"),
        Limits::default(),
    )
    .expect("load");
    p.accept_deployments(d);
    assert_eq!(out(&mut p, "22.3333"), b"\"Temperature: 22.3 C\"");
    assert!(matches!(
        p.deploy(&five.deployment()),
        Err(OtaError::Replay {
            sequence: 5,
            current: 5
        })
    ));
    p
}

#[test]
fn the_last_deployment_survives_a_restart_through_its_store() {
    let repeat = std::fs::read(common::component("core/Repeat")).expect("read");
    let format = std::fs::read(common::component("temperature/Format")).expect("read");
    let trusted = keys(1);
    let dir = std::env::temp_dir().join(format!("wasmflo-edge-ota-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("fmt.deployment");
    let _ = std::fs::remove_file(&path);
    let deployer = || Deployer::new("fmt", vec![*trusted.pk], 0, 1 << 20);

    let (mut p, _) = Participant::new(&Engine::new(), &repeat, Limits::default()).expect("load");
    let (d, stored) = deployer()
        .with_store(Box::new(FileDeploymentStore::new(&path)))
        .expect("empty store");
    assert_eq!(stored, None);
    p.accept_deployments(d);
    let five = Signed::new(&trusted, "fmt", 5, &format);
    p.deploy(&five.deployment()).expect("deploy");

    // The restart: a new participant from what the store kept, its sequence the floor.
    let (d, stored) = deployer()
        .with_store(Box::new(FileDeploymentStore::new(&path)))
        .expect("stored");
    let stored = stored.expect("a deployment");
    assert_eq!(stored.sequence, 5);
    assert_eq!(d.sequence(), 5);
    restarted_with_formatter_at_5(d, stored, &five);
    let _ = std::fs::remove_dir_all(&dir);

    // A deployment the store cannot record is not swapped in.
    let (mut p, _) = Participant::new(&Engine::new(), &repeat, Limits::default()).expect("load");
    let (d, _) = deployer().with_store(Box::new(BrokenStore)).expect("load");
    p.accept_deployments(d);
    assert!(matches!(
        p.deploy(&five.deployment()),
        Err(OtaError::Store(StoreError::Io { .. }))
    ));
    assert_eq!(out(&mut p, "22.3333"), b"22.3333");
    assert_eq!(p.sequence(), Some(0));

    // A sequence-only store (a device without room for a second component) still
    // keeps the floor.
    let mut memory = MemoryDeploymentStore::sequence_only();
    memory.store(7, &format).expect("store");
    let (d, stored) = deployer().with_store(Box::new(memory)).expect("load");
    assert_eq!(d.sequence(), 7);
    assert_eq!(stored.and_then(|s| s.component), None);
}

/// 1 MiB of NOR flash with an ESP32's geometry (4-byte reads and writes, 4 KiB sectors),
/// shared by the stores before and after a simulated restart.
#[derive(Debug, Clone)]
struct SharedFlash(Rc<RefCell<MemoryNorFlash<4, 4, 4096>>>);

impl ErrorType for SharedFlash {
    type Error = MemoryNorFlashError;
}

impl ReadNorFlash for SharedFlash {
    const READ_SIZE: usize = 4;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.0.borrow_mut().read(offset, bytes)
    }

    fn capacity(&self) -> usize {
        self.0.borrow().capacity()
    }
}

impl NorFlash for SharedFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 4096;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.0.borrow_mut().erase(from, to)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.borrow_mut().write(offset, bytes)
    }
}

#[test]
fn the_last_deployment_survives_a_restart_through_a_flash_store() {
    let repeat = std::fs::read(common::component("core/Repeat")).expect("read");
    let format = std::fs::read(common::component("temperature/Format")).expect("read");
    let trusted = keys(1);
    let flash = SharedFlash(Rc::new(RefCell::new(MemoryNorFlash::new(1 << 20))));
    // 512 KiB from 0x80000: two slots of 256 KiB, as in the board example.
    let boot = || {
        let store = FlashDeploymentStore::new(flash.clone(), 0x8_0000, 0x8_0000).expect("region");
        Deployer::new("fmt", vec![*trusted.pk], 0, 1 << 20).with_store(Box::new(store))
    };

    let (d, stored) = boot().expect("erased flash");
    assert_eq!(stored, None);
    let (mut p, _) = Participant::new(&Engine::new(), &repeat, Limits::default()).expect("load");
    p.accept_deployments(d);
    let five = Signed::new(&trusted, "fmt", 5, &format);
    p.deploy(&five.deployment()).expect("deploy");
    drop(p);

    // The restart: the component and the floor come back from the flash.
    let (d, stored) = boot().expect("stored");
    let stored = stored.expect("a deployment");
    assert_eq!((stored.sequence, d.sequence()), (5, 5));
    let mut p = restarted_with_formatter_at_5(d, stored, &five);
    // Deployment 6 goes to the other slot; the next restart runs it.
    let six = Signed::new(&trusted, "fmt", 6, &repeat);
    p.deploy(&six.deployment()).expect("deploy");
    assert_eq!(out(&mut p, "22.3333"), b"22.3333");
    drop(p);
    let magic = |slot: usize| flash.0.borrow().bytes()[slot..slot + 4] == *b"WFDS";
    assert!(
        magic(0x8_0000) && magic(0xC_0000),
        "6 went beside 5, not over it"
    );
    let (d, stored) = boot().expect("stored");
    assert_eq!(d.sequence(), 6);
    assert_eq!(stored.and_then(|s| s.component), Some(repeat));

    // Damage to the flash stops the start rather than resetting the floor.
    flash.0.borrow_mut().bytes_mut()[0x8_0000 + 40] ^= 1;
    flash.0.borrow_mut().bytes_mut()[0xC_0000 + 40] ^= 1;
    assert!(matches!(
        boot(),
        Err(StoreError::Corrupt { at, .. }) if at == "flash 0x80000..0x100000"
    ));
}
