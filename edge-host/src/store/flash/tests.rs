//! The flash store on [`MemoryNorFlash`], with power cuts and failures injected.

use alloc::string::ToString;

use embedded_storage::nor_flash::{ErrorType, NorFlashError, NorFlashErrorKind, ReadNorFlash};

use super::*;
use crate::store::{MemoryNorFlash, MemoryNorFlashError};

/// Reads of 4 bytes, writes of 16 (so the component's tail is padded), 256-byte sectors.
type Flash = MemoryNorFlash<4, 16, 256>;

/// The region: one sector in, two slots of four sectors.
const OFFSET: u32 = 0x100;
const SIZE: u32 = 0x800;
const SLOT_A: usize = 0x100;
const SLOT_B: usize = 0x500;
const AT: &str = "flash 0x100..0x900";

fn flash() -> Flash {
    Flash::new(0x1000)
}

fn store<F: NorFlash>(f: &mut F) -> FlashDeploymentStore<&mut F> {
    FlashDeploymentStore::new(f, OFFSET, SIZE).expect("region")
}

/// A component of `len` bytes, different for each `seed`.
fn component(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_mul(31) ^ i as u8).collect()
}

fn stored(sequence: u64, component: &[u8]) -> Option<Stored> {
    Some(Stored {
        sequence,
        component: Some(component.to_vec()),
    })
}

/// What a power cut or a failing chip does to the operation that crosses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// The power goes: the operation stops part way and every later one fails.
    PowerCut,
    /// The operation stops part way and fails; later ones work.
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FaultError {
    PowerCut,
    Failed,
    Flash(MemoryNorFlashError),
}

impl NorFlashError for FaultError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FaultError::Flash(e) => e.kind(),
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// A flash that does `budget` units of work — a byte written, a sector erased — and then
/// `fault`s: the write that crosses the budget programs only the bytes before it, the
/// erase only the sectors before it.
#[derive(Debug)]
struct Faulty<'a> {
    flash: &'a mut Flash,
    budget: usize,
    fault: Fault,
    dead: bool,
    /// Units done so far.
    spent: usize,
}

impl<'a> Faulty<'a> {
    fn new(flash: &'a mut Flash, budget: usize, fault: Fault) -> Self {
        Faulty {
            flash,
            budget,
            fault,
            dead: false,
            spent: 0,
        }
    }

    fn alive(&self) -> Result<(), FaultError> {
        if self.dead {
            Err(FaultError::PowerCut)
        } else {
            Ok(())
        }
    }

    fn cut(&mut self) -> FaultError {
        self.budget = usize::MAX;
        match self.fault {
            Fault::PowerCut => {
                self.dead = true;
                FaultError::PowerCut
            }
            Fault::Fail => FaultError::Failed,
        }
    }
}

impl ErrorType for Faulty<'_> {
    type Error = FaultError;
}

impl ReadNorFlash for Faulty<'_> {
    const READ_SIZE: usize = Flash::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FaultError> {
        self.alive()?;
        self.flash.read(offset, bytes).map_err(FaultError::Flash)
    }

    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

impl NorFlash for Faulty<'_> {
    const WRITE_SIZE: usize = Flash::WRITE_SIZE;
    const ERASE_SIZE: usize = Flash::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FaultError> {
        self.alive()?;
        let sector = Flash::ERASE_SIZE as u32;
        let mut at = from;
        while at < to {
            if self.spent == self.budget {
                // Cut while this sector was being erased: its contents are undefined
                // (here a scramble of what it held; all 0xFF becomes 0xC3).
                let range = at as usize..(at + sector) as usize;
                for cell in &mut self.flash.bytes_mut()[range] {
                    *cell = cell.rotate_left(3) ^ 0x3C;
                }
                return Err(self.cut());
            }
            self.flash
                .erase(at, at + sector)
                .map_err(FaultError::Flash)?;
            self.spent += 1;
            at += sector;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FaultError> {
        self.alive()?;
        let room = self.budget - self.spent;
        if bytes.len() <= room {
            self.flash.write(offset, bytes).map_err(FaultError::Flash)?;
            self.spent += bytes.len();
            return Ok(());
        }
        // Cut part way: the bytes before `room` are programmed, and the rest of the word
        // being programmed (if the cut fell inside one) is undefined.
        let start = offset as usize;
        let word_end = room.next_multiple_of(Flash::WRITE_SIZE);
        for (i, cell) in self.flash.bytes_mut()[start..start + word_end]
            .iter_mut()
            .enumerate()
        {
            if i < room {
                *cell &= bytes[i];
            } else {
                *cell &= bytes[i].rotate_left(2) ^ 0x5A;
            }
        }
        self.spent += room;
        Err(self.cut())
    }
}

/// A flash with quirks, each off at first.
#[derive(Debug)]
struct Quirky {
    flash: Flash,
    /// Writes of a component (not at a slot's start) clear their last byte's low bit.
    flip: bool,
    /// Writes report success and program nothing.
    drop_writes: bool,
    /// Reads fail once a header (at a slot's start) is written, until this is cleared.
    fail_reads_after_header: bool,
    /// Erases fail.
    fail_erases: bool,
    reads_failing: bool,
}

impl Quirky {
    fn new() -> Self {
        Quirky {
            flash: flash(),
            flip: false,
            drop_writes: false,
            fail_reads_after_header: false,
            fail_erases: false,
            reads_failing: false,
        }
    }
}

impl ErrorType for Quirky {
    type Error = FaultError;
}

impl ReadNorFlash for Quirky {
    const READ_SIZE: usize = Flash::READ_SIZE;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FaultError> {
        if self.reads_failing {
            return Err(FaultError::Failed);
        }
        self.flash.read(offset, bytes).map_err(FaultError::Flash)
    }

    fn capacity(&self) -> usize {
        self.flash.capacity()
    }
}

impl NorFlash for Quirky {
    const WRITE_SIZE: usize = Flash::WRITE_SIZE;
    const ERASE_SIZE: usize = Flash::ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FaultError> {
        if self.fail_erases {
            return Err(FaultError::Failed);
        }
        self.flash.erase(from, to).map_err(FaultError::Flash)
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FaultError> {
        if self.drop_writes {
            return Ok(());
        }
        let header = [SLOT_A, SLOT_B].contains(&(offset as usize));
        let mut bytes = bytes.to_vec();
        if self.flip
            && !header
            && let Some(last) = bytes.last_mut()
        {
            *last &= !1;
        }
        self.flash
            .write(offset, &bytes)
            .map_err(FaultError::Flash)?;
        self.reads_failing |= header && self.fail_reads_after_header;
        Ok(())
    }
}

/// The units of work `op` does on a copy of `f`.
fn cost(f: &Flash, op: impl FnOnce(&mut FlashDeploymentStore<Faulty<'_>>)) -> usize {
    let mut copy = f.clone();
    let mut s = FlashDeploymentStore::new(
        Faulty::new(&mut copy, usize::MAX, Fault::Fail),
        OFFSET,
        SIZE,
    )
    .expect("region");
    op(&mut s);
    s.into_inner().spent
}

fn magic_at(f: &Flash, slot: usize) -> bool {
    f.bytes()[slot..slot + 4] == MAGIC
}

/// The bytes a store writes for `component`: its 16-byte words but those all 0xFF.
fn programmed(component: &[u8]) -> usize {
    component
        .chunks(16)
        .filter(|word| word.len() < 16 || word.iter().any(|&b| b != 0xFF))
        .count()
        * 16
}

/// The sectors of the `sectors` from `at` that do not read erased.
fn dirty(f: &Flash, at: usize, sectors: usize) -> usize {
    f.bytes()[at..at + sectors * 256]
        .chunks(256)
        .filter(|s| s.iter().any(|&b| b != 0xFF))
        .count()
}

#[test]
fn an_erased_region_holds_nothing_and_records_round_trip() {
    let mut f = flash();
    assert_eq!(store(&mut f).load(), Ok(None));
    let five = component(5, 301);
    store(&mut f).store(5, &five).expect("store");
    // A new store over the same flash: what a reboot sees.
    assert_eq!(store(&mut f).load(), Ok(stored(5, &five)));
    assert!(magic_at(&f, SLOT_A));
    // Nothing outside the region was touched.
    assert!(f.bytes()[..SLOT_A].iter().all(|&b| b == 0xFF));
    assert!(f.bytes()[SLOT_B + 0x400..].iter().all(|&b| b == 0xFF));
}

#[test]
fn records_alternate_between_the_slots() {
    let mut f = flash();
    let mut s = store(&mut f);
    // Lengths: aligned, padded, empty, the largest kept.
    let max = s.max_component();
    assert_eq!(max, 0x400 - 64);
    let sizes = [32, 301, 0, max, 7, 301];
    for (i, len) in sizes.into_iter().enumerate() {
        let sequence = 10 + i as u64;
        let c = component(i as u8, len);
        s.store(sequence, &c).expect("store");
        assert_eq!(s.load(), Ok(stored(sequence, &c)), "record {i}");
    }
    let _ = s.into_inner();
    // Six records: the last in slot B, the one before in A.
    assert!(magic_at(&f, SLOT_A) && magic_at(&f, SLOT_B));
    assert_eq!(f.bytes()[SLOT_B + 8], 15);
    assert_eq!(f.bytes()[SLOT_A + 8], 14);
    assert_eq!(store(&mut f).load(), Ok(stored(15, &component(5, 301))));
}

#[test]
fn a_power_cut_at_any_point_of_a_store_keeps_the_old_record_or_the_new_one() {
    let (c1, c2, c3) = (component(1, 700), component(2, 301), component(3, 900));
    let mut f = flash();
    // The first store: before its header is written the region holds nothing. It
    // erases nothing: an erase cut short could leave a blank sector undefined.
    let first = cost(&f, |s| s.store(1, &c1).expect("store"));
    assert_eq!(first, programmed(&c1) + 64);
    let header_from = first - 64;
    for budget in 0..=first {
        let mut g = f.clone();
        let mut s =
            FlashDeploymentStore::new(Faulty::new(&mut g, budget, Fault::PowerCut), OFFSET, SIZE)
                .expect("region");
        assert_eq!(s.store(1, &c1).is_ok(), budget == first, "budget {budget}");
        let got = store(&mut g).load();
        match budget {
            b if b <= header_from => assert_eq!(got, Ok(None), "budget {b}"),
            b if b < first => {
                // Torn in the header's own write, with no older record: the one case
                // that reads as damage (the safe side: the floor is not reset).
                assert!(
                    matches!(&got, Err(StoreError::Corrupt { at, .. }) if at == AT),
                    "budget {b}: {got:?}"
                );
            }
            _ => assert_eq!(got, Ok(stored(1, &c1))),
        }
    }
    store(&mut f).store(1, &c1).expect("store");

    // The second store (into blank B) and the third (over the older record in A), each
    // cut at every byte and sector, an erase or a word cut short left undefined: the
    // old record until the new header is complete.
    for (old, new, slot) in [((1, &c1), (2, &c2), SLOT_B), ((2, &c2), (3, &c3), SLOT_A)] {
        let total = cost(&f, |s| s.store(new.0, new.1).expect("store"));
        // The sectors erased (those the record needs that do not read erased), the
        // padded component, the header.
        let sectors = (64 + new.1.len().div_ceil(16) * 16).div_ceil(256);
        let erased = dirty(&f, slot, sectors);
        assert_eq!(erased, if slot == SLOT_B { 0 } else { 3 });
        assert_eq!(total, erased + programmed(new.1) + 64);
        for budget in 0..=total {
            let mut g = f.clone();
            let mut s = FlashDeploymentStore::new(
                Faulty::new(&mut g, budget, Fault::PowerCut),
                OFFSET,
                SIZE,
            )
            .expect("region");
            assert_eq!(s.store(new.0, new.1).is_ok(), budget == total);
            let want = if budget == total { new } else { old };
            assert_eq!(
                store(&mut g).load(),
                Ok(stored(want.0, want.1)),
                "sequence {} cut at {budget} of {total}",
                new.0
            );
        }
        store(&mut f).store(new.0, new.1).expect("store");
    }
}

#[test]
fn a_failing_flash_rejects_the_store_and_keeps_the_old_record() {
    let mut f = flash();
    let five = component(5, 301);
    store(&mut f).store(5, &five).expect("store");
    let mut s = FlashDeploymentStore::new(Faulty::new(&mut f, 100, Fault::Fail), OFFSET, SIZE)
        .expect("region");
    let err = s.store(6, &component(6, 301)).expect_err("fails");
    assert!(
        matches!(&err, StoreError::Io { op: "write", at, detail } if at == AT && detail == "Failed"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "flash 0x100..0x900: cannot write: Failed");
    assert_eq!(s.load(), Ok(stored(5, &five)));
    // The flash works again: the retry lands.
    s.store(6, &component(6, 301)).expect("retry");
    assert_eq!(s.load(), Ok(stored(6, &component(6, 301))));
}

#[test]
fn a_damaged_slot_leaves_the_other_and_two_are_corrupt() {
    let (five, six) = (component(5, 301), component(6, 40));
    let mut base = flash();
    store(&mut base).store(5, &five).expect("store");
    store(&mut base).store(6, &six).expect("store");

    // The newer header damaged (a sequence bit): the older record is what is left.
    let mut f = base.clone();
    f.bytes_mut()[SLOT_B + 8] ^= 0x80;
    assert_eq!(store(&mut f).load(), Ok(stored(5, &five)));
    // The next store overwrites the damaged slot, not the good one.
    store(&mut f).store(7, &six).expect("store");
    assert_eq!(store(&mut f).load(), Ok(stored(7, &six)));
    assert_eq!(f.bytes()[SLOT_A + 8], 5);

    // The older header or the older component damaged: the newer record stands.
    for at in [SLOT_A + 30, SLOT_A + 64 + 100] {
        let mut f = base.clone();
        f.bytes_mut()[at] ^= 1;
        assert_eq!(store(&mut f).load(), Ok(stored(6, &six)), "byte {at:#x}");
    }

    // Both headers damaged: corrupt, naming the region and each slot.
    let mut f = base.clone();
    f.bytes_mut()[SLOT_A + 60] ^= 1;
    f.bytes_mut()[SLOT_B] = 0;
    let err = store(&mut f).load().expect_err("corrupt");
    assert_eq!(
        err,
        StoreError::Corrupt {
            at: AT.to_string(),
            detail: "slot A at 0x100: header checksum mismatch; slot B at 0x500: no record magic"
                .to_string()
        }
    );

    // The newest header intact but its component damaged: falling back to the older
    // record would lower the floor, so that is corrupt too.
    let mut f = base.clone();
    f.bytes_mut()[SLOT_B + 64 + 3] ^= 4;
    let err = store(&mut f).load().expect_err("corrupt");
    assert_eq!(
        err,
        StoreError::Corrupt {
            at: AT.to_string(),
            detail: "slot B at 0x500: component does not match its sha256 (sequence 6)".to_string()
        }
    );

    // One header damaged, the other slot erased: corrupt, not "nothing stored".
    let mut f = flash();
    store(&mut f).store(5, &five).expect("store");
    f.bytes_mut()[SLOT_A + 9] ^= 1;
    assert!(matches!(
        store(&mut f).load(),
        Err(StoreError::Corrupt { .. })
    ));
}

#[test]
fn a_component_too_large_for_a_slot_is_stored_as_its_sequence() {
    let mut f = flash();
    let mut s = store(&mut f);
    let max = s.max_component();
    s.store(8, &component(8, max)).expect("store");
    assert_eq!(s.load(), Ok(stored(8, &component(8, max))));
    s.store(9, &component(9, max + 1)).expect("store");
    assert_eq!(
        s.load(),
        Ok(Some(Stored {
            sequence: 9,
            component: None
        }))
    );
    // It still alternates: the kept component of 8 was not overwritten.
    let _ = s.into_inner();
    assert_eq!(f.bytes()[SLOT_A + 8], 8);
    assert_eq!(f.bytes()[SLOT_B + 8], 9);
    assert_eq!(
        f.bytes()[SLOT_A + 64..SLOT_A + 64 + max],
        component(8, max)[..]
    );
}

#[test]
fn a_region_off_the_flash_geometry_is_refused_at_construction() {
    let mut f = flash();
    let region = |f: &mut Flash, offset, size| {
        FlashDeploymentStore::new(f, offset, size).map(|s| s.region())
    };
    assert_eq!(region(&mut f, 0x100, 0x800), Ok(0x100..0x900));
    for (offset, size) in [(0x80, 0x800), (0x100, 0x300), (0x100, 0x100), (0x100, 0)] {
        assert_eq!(
            region(&mut f, offset, size),
            Err(FlashRegionError::Misaligned {
                offset,
                size,
                erase_size: 0x100
            }),
            "{offset:#x}+{size:#x}"
        );
    }
    assert_eq!(
        region(&mut f, 0xE00, 0x400),
        Err(FlashRegionError::OutOfBounds {
            offset: 0xE00,
            size: 0x400,
            capacity: 0x1000
        })
    );
    assert!(matches!(
        region(&mut f, 0xFFFF_FF00, 0x200),
        Err(FlashRegionError::OutOfBounds { .. })
    ));
    assert_eq!(
        FlashRegionError::Misaligned {
            offset: 0x80,
            size: 0x800,
            erase_size: 0x100
        }
        .to_string(),
        "flash region at 0x80 of 0x800 bytes: the offset must be a multiple of the erase size \
         0x100 and the size of twice it (two slots)"
    );
    // Sectors of 32 bytes: a 64-byte header does not fit a one-sector slot.
    let mut small = MemoryNorFlash::<4, 4, 32>::new(0x400);
    assert_eq!(
        FlashDeploymentStore::new(&mut small, 0, 0x40).map(|s| s.region()),
        Err(FlashRegionError::TooSmall {
            offset: 0,
            size: 0x40,
            needed: 64
        })
    );
    // Writes of 128 bytes and sectors of 32: slot B would not start on a whole write.
    let mut coarse = MemoryNorFlash::<4, 128, 32>::new(0x400);
    assert_eq!(
        FlashDeploymentStore::new(&mut coarse, 0, 0x100).map(|s| s.region()),
        Err(FlashRegionError::Misaligned {
            offset: 0,
            size: 0x100,
            erase_size: 32
        })
    );
}

#[test]
fn a_component_that_does_not_read_back_leaves_the_previous_record() {
    let mut q = Quirky::new();
    // 0xFF bytes (but one, or the store would write no word of them): every one has
    // its low bit set, so the flip always changes one.
    let mut one = vec![0xFF; 40];
    one[39] = 0xFE;
    store(&mut q).store(1, &one).expect("store 1");
    q.flip = true;
    let mut two = vec![0xFF; 40];
    two[0] = 0x0F;
    assert!(matches!(
        store(&mut q).store(2, &two),
        Err(StoreError::Io { op: "verify", .. })
    ));
    // Its header is erased again: the previous record, not damage that stops a device.
    assert_eq!(store(&mut q).load(), Ok(stored(1, &one)));
    // And the next store goes beside record 1 again.
    q.flip = false;
    let mut s = store(&mut q);
    s.store(3, b"three").expect("store 3");
    assert_eq!(s.load(), Ok(stored(3, b"three")));
    assert_eq!(
        s.store(2, b"two"),
        Err(StoreError::Backwards {
            at: AT.to_string(),
            sequence: 2,
            stored: 3
        })
    );
    assert_eq!(s.load(), Ok(stored(3, b"three")));
}

#[test]
fn a_write_the_flash_did_not_make_fails_the_read_back() {
    let mut q = Quirky::new();
    q.drop_writes = true;
    let mut s = store(&mut q);
    assert!(matches!(
        s.store(1, b"one"),
        Err(StoreError::Io { op: "verify", .. })
    ));
    // What did not read back is erased again: nothing stored, not damage.
    assert_eq!(s.load(), Ok(None));
}

#[test]
fn a_store_failing_after_its_header_withdraws_the_record_or_says_it_could_not() {
    let (one, two) = (component(1, 301), component(2, 301));
    let mut q = Quirky::new();
    store(&mut q).store(1, &one).expect("store 1");

    // The read-back fails: the header is erased again, so the rejected deployment is
    // not what a restart runs.
    q.fail_reads_after_header = true;
    let err = store(&mut q).store(2, &two).expect_err("read-back fails");
    assert_eq!(err.to_string(), "flash 0x100..0x900: cannot read: Failed");
    q.reads_failing = false;
    assert_eq!(store(&mut q).load(), Ok(stored(1, &one)));

    // The read-back fails and so does the erase (on a fresh flash, where the stores
    // need no erase before): the error says the record may stay, a restart loads it,
    // and storing the same deployment again is a success.
    let mut q = Quirky::new();
    q.fail_erases = true;
    store(&mut q).store(1, &one).expect("store 1");
    q.fail_reads_after_header = true;
    let err = store(&mut q).store(2, &two).expect_err("read-back fails");
    assert_eq!(
        err.to_string(),
        "flash 0x100..0x900: cannot read: Failed; erasing the record again failed too \
         (Failed), so a restart may load it"
    );
    q.reads_failing = false;
    q.fail_reads_after_header = false;
    let mut s = store(&mut q);
    assert_eq!(s.load(), Ok(stored(2, &two)));
    s.store(2, &two).expect("the same record again");
    assert_eq!(s.load(), Ok(stored(2, &two)));
}

#[test]
fn the_same_record_again_writes_nothing_and_no_sequence_goes_back() {
    let mut f = flash();
    let five = component(5, 301);
    store(&mut f).store(5, &five).expect("store");
    let before = f.clone();
    assert_eq!(cost(&f, |s| s.store(5, &five).expect("again")), 0);
    store(&mut f).store(5, &five).expect("again");
    assert_eq!(f, before);
    let err = store(&mut f)
        .store(5, &component(6, 301))
        .expect_err("another component at sequence 5");
    assert_eq!(
        err,
        StoreError::Backwards {
            at: AT.to_string(),
            sequence: 5,
            stored: 5
        }
    );
    assert_eq!(
        err.to_string(),
        "flash 0x100..0x900: sequence 5 is not above the stored sequence 5"
    );
    assert!(matches!(
        store(&mut f).store(4, &five),
        Err(StoreError::Backwards {
            sequence: 4,
            stored: 5,
            ..
        })
    ));
    assert_eq!(f, before);
    assert_eq!(store(&mut f).load(), Ok(stored(5, &five)));
}

#[test]
fn words_of_0xff_are_not_written_so_a_sector_that_reads_erased_is() {
    // A component with a whole sector of 0xFF in it: that sector of slot A is never
    // written, reads erased, and is not erased before the third store writes it (the
    // strict flash refuses a second write to a word).
    let mut c1 = vec![0xFF; 560 - 64];
    c1[..16].copy_from_slice(&component(1, 16));
    c1[560 - 64 - 32..].copy_from_slice(&component(1, 32));
    let mut f = flash();
    store(&mut f).store(1, &c1).expect("store 1");
    assert_eq!(store(&mut f).load(), Ok(stored(1, &c1)));
    assert_eq!(dirty(&f, SLOT_A, 3), 2);
    store(&mut f).store(2, &component(2, 40)).expect("store 2");
    let c3 = component(3, 700);
    assert_eq!(
        cost(&f, |s| s.store(3, &c3).expect("store 3")),
        2 + programmed(&c3) + 64
    );
    store(&mut f).store(3, &c3).expect("store 3");
    assert_eq!(store(&mut f).load(), Ok(stored(3, &c3)));
}
