//! A [`DeploymentStore`] in a region of NOR flash (feature `flash-store`): what a device
//! such as an ESP32 keeps its last accepted deployment in, over any `embedded-storage`
//! 0.3 [`NorFlash`] (`esp_storage::FlashStorage` there, [`MemoryNorFlash`](super::MemoryNorFlash)
//! in tests).
//!
//! The region (offset and size multiples of the erase size, the size of twice it) is
//! split into two slots, A and B. Each record is one slot: a 64-byte header at its start
//! (padded to the read and write sizes) and the component after it:
//!
//! ```text
//! 0  magic "WFDS"     4  format version (u32, 1)   8  sequence (u64)
//! 16 component length (u32)   20 flags (u32; bit 0: the component is kept)
//! 24 sha256 of the component (32 bytes)   56 first 8 bytes of the sha256 of bytes 0..56
//! ```
//! (all little-endian). A store writes into the slot that does not hold the newest valid
//! record: it erases the sectors it needs that do not read erased, writes the component
//! (each word once, as `NorFlash` requires, and no word that is all 0xFF), writes the
//! header last and reads the record back. A power cut at any point leaves that slot
//! without a valid header and the other slot as it was, so `load` gives the old record
//! or the new one; a store that fails after the header's write erases the header again
//! (and says so if it cannot). `load` takes the slot with the highest sequence whose
//! header checksum holds; its component must match the sha256, or the region is
//! [`StoreError::Corrupt`] (an intact header with a higher sequence than what is left must
//! not be ignored: the replay floor would drop). A region whose headers are both erased
//! (0xFF) holds no deployment (`Ok(None)`), whatever an interrupted first store left
//! after them — the header is written last, so that is never a record; any other header
//! that does not check out in both slots is `Corrupt`, naming the region: a device must
//! not silently reset its floor. So the power cuts that read as damage are those in the
//! very first store, when there is no older record to fall back on, during the header's
//! own write — or during the erase of a sector that held something other than a record
//! (sectors that read erased are not erased again); erasing the region starts afresh.
//! A sequence below the newest record's, or the same one with another component, is
//! refused ([`StoreError::Backwards`]); the same record again is a success that writes
//! nothing. A component too large for a slot is not kept: the record then holds the
//! sequence only (the trait allows it) and `load` returns no component;
//! [`FlashDeploymentStore::max_component`] says how large one can be.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

use embedded_storage::nor_flash::NorFlash;
use sha2::{Digest, Sha256};

use super::{DeploymentStore, StoreError, Stored};

const MAGIC: [u8; 4] = *b"WFDS";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 64;
const FLAG_COMPONENT: u32 = 1;
/// Bytes hashed per read when a component is checked without being kept.
const CHUNK: usize = 512;

/// Keeps the last accepted deployment in two slots of a NOR flash region.
#[derive(Debug)]
pub struct FlashDeploymentStore<F> {
    flash: F,
    offset: u32,
    slot_size: u32,
}

/// Why a flash region cannot hold a [`FlashDeploymentStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlashRegionError {
    /// The offset is not a multiple of the erase size, or the size not one of twice it
    /// (each slot is whole sectors), or a sector is not whole reads and writes.
    Misaligned {
        /// The region's start in the flash.
        offset: u32,
        /// Its size in bytes.
        size: u32,
        /// The flash's erase size.
        erase_size: usize,
    },
    /// The region reaches past the end of the flash.
    OutOfBounds {
        /// The region's start in the flash.
        offset: u32,
        /// Its size in bytes.
        size: u32,
        /// The flash's size.
        capacity: usize,
    },
    /// A slot is smaller than a header padded to the flash's read and write sizes.
    TooSmall {
        /// The region's start in the flash.
        offset: u32,
        /// Its size in bytes.
        size: u32,
        /// The bytes a slot needs at least.
        needed: usize,
    },
}

impl fmt::Display for FlashRegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashRegionError::Misaligned {
                offset,
                size,
                erase_size,
            } => write!(
                f,
                "flash region at {offset:#x} of {size:#x} bytes: the offset must be a multiple \
                 of the erase size {erase_size:#x} and the size of twice it (two slots)"
            ),
            FlashRegionError::OutOfBounds {
                offset,
                size,
                capacity,
            } => write!(
                f,
                "flash region at {offset:#x} of {size:#x} bytes: reaches past the end of the \
                 {capacity:#x}-byte flash"
            ),
            FlashRegionError::TooSmall {
                offset,
                size,
                needed,
            } => write!(
                f,
                "flash region at {offset:#x} of {size:#x} bytes: each of its two slots needs at \
                 least {needed:#x} bytes"
            ),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for FlashRegionError {}

/// A header whose magic, version and checksum hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    sequence: u64,
    length: u32,
    kept: bool,
    sha256: [u8; 32],
}

/// The slots with an intact header, highest sequence first.
fn intact(states: &[HeaderState; 2]) -> Vec<(usize, Header)> {
    let mut intact: Vec<(usize, Header)> = states
        .iter()
        .enumerate()
        .filter_map(|(slot, s)| match s {
            HeaderState::Intact(h) => Some((slot, *h)),
            _ => None,
        })
        .collect();
    intact.sort_by_key(|(_, h)| core::cmp::Reverse(h.sequence));
    intact
}

/// A slot's header as read.
#[derive(Debug)]
enum HeaderState {
    /// All 0xFF: nothing was ever committed here (or it was erased for a new record).
    Erased,
    /// Written, but not a header: a torn write or damage.
    Damaged(&'static str),
    Intact(Header),
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&MAGIC);
        b[4..8].copy_from_slice(&VERSION.to_le_bytes());
        b[8..16].copy_from_slice(&self.sequence.to_le_bytes());
        b[16..20].copy_from_slice(&self.length.to_le_bytes());
        let flags = if self.kept { FLAG_COMPONENT } else { 0 };
        b[20..24].copy_from_slice(&flags.to_le_bytes());
        b[24..56].copy_from_slice(&self.sha256);
        let check = Sha256::digest(&b[..56]);
        b[56..64].copy_from_slice(&check[..8]);
        b
    }

    fn decode(b: &[u8]) -> HeaderState {
        let Some(b) = b.get(..HEADER_LEN) else {
            return HeaderState::Damaged("short header");
        };
        if b.iter().all(|&x| x == 0xFF) {
            return HeaderState::Erased;
        }
        if b[0..4] != MAGIC {
            return HeaderState::Damaged("no record magic");
        }
        if Sha256::digest(&b[..56])[..8] != b[56..64] {
            return HeaderState::Damaged("header checksum mismatch");
        }
        if u32_at(b, 4) != VERSION {
            return HeaderState::Damaged("unknown format version");
        }
        let flags = u32_at(b, 20);
        if flags & !FLAG_COMPONENT != 0 {
            return HeaderState::Damaged("unknown flags");
        }
        let mut sequence = [0u8; 8];
        sequence.copy_from_slice(&b[8..16]);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(&b[24..56]);
        HeaderState::Intact(Header {
            sequence: u64::from_le_bytes(sequence),
            length: u32_at(b, 16),
            kept: flags & FLAG_COMPONENT != 0,
            sha256,
        })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn round_up(n: usize, to: usize) -> usize {
    n.div_ceil(to) * to
}

impl<F: NorFlash> FlashDeploymentStore<F> {
    /// A store in the `size` bytes of `flash` from `offset`. Both must be multiples of
    /// the erase size (the size of twice it) and the region inside the flash.
    pub fn new(flash: F, offset: u32, size: u32) -> Result<Self, FlashRegionError> {
        let erase = F::ERASE_SIZE;
        let (o, s) = (offset as usize, size as usize);
        // Slot B and the components start on sector boundaries, so a sector must be
        // whole reads and writes too.
        if erase == 0
            || !erase.is_multiple_of(Self::align())
            || !o.is_multiple_of(erase)
            || s == 0
            || !s.is_multiple_of(2 * erase)
        {
            return Err(FlashRegionError::Misaligned {
                offset,
                size,
                erase_size: erase,
            });
        }
        if offset
            .checked_add(size)
            .is_none_or(|end| end as usize > flash.capacity())
        {
            return Err(FlashRegionError::OutOfBounds {
                offset,
                size,
                capacity: flash.capacity(),
            });
        }
        let store = FlashDeploymentStore {
            flash,
            offset,
            slot_size: size / 2,
        };
        if store.header_area() > store.slot_size as usize {
            return Err(FlashRegionError::TooSmall {
                offset,
                size,
                needed: store.header_area(),
            });
        }
        Ok(store)
    }

    /// The region, as offsets in the flash.
    pub fn region(&self) -> Range<u32> {
        self.offset..self.offset + 2 * self.slot_size
    }

    /// The largest component a record keeps; a larger one is stored as its sequence only.
    pub fn max_component(&self) -> usize {
        let room = self.slot_size as usize - self.header_area();
        room - room % Self::align()
    }

    /// The flash, given back.
    pub fn into_inner(self) -> F {
        self.flash
    }

    /// Reads and writes are multiples of this: the least common multiple of the
    /// flash's read and write sizes.
    fn align() -> usize {
        let (r, w) = (F::READ_SIZE.max(1), F::WRITE_SIZE.max(1));
        r / gcd(r, w) * w
    }

    /// The header with its padding; the component starts after it.
    fn header_area(&self) -> usize {
        round_up(HEADER_LEN, Self::align())
    }

    fn slot_start(&self, slot: usize) -> u32 {
        self.offset + slot as u32 * self.slot_size
    }

    fn at(&self) -> String {
        let r = self.region();
        format!("flash {:#x}..{:#x}", r.start, r.end)
    }

    fn io(&self, op: &'static str, e: &F::Error) -> StoreError {
        StoreError::Io {
            op,
            at: self.at(),
            detail: format!("{e:?}"),
        }
    }

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), StoreError> {
        self.flash
            .read(offset, bytes)
            .map_err(|e| self.io("read", &e))
    }

    fn header(&mut self, slot: usize) -> Result<HeaderState, StoreError> {
        let mut bytes = vec![0u8; self.header_area()];
        self.read(self.slot_start(slot), &mut bytes)?;
        Ok(Header::decode(&bytes))
    }

    /// Checks a slot's component against its header: `Ok(Err(why))` if it does not
    /// match; its bytes if `keep` and the record holds one.
    fn verify(
        &mut self,
        slot: usize,
        h: &Header,
        keep: bool,
    ) -> Result<Result<Option<Vec<u8>>, &'static str>, StoreError> {
        let len = h.length as usize;
        if !h.kept {
            return Ok(
                if len == 0 && h.sha256 == <[u8; 32]>::from(Sha256::digest(b"")) {
                    Ok(None)
                } else {
                    Err("a sequence-only record with a component length or sha256")
                },
            );
        }
        // `max_component` is whole reads and writes, so this is `round_up(len) > max`
        // without the overflow a length read from flash could cause on 32 bits.
        if len > self.max_component() {
            return Ok(Err("component length exceeds the slot"));
        }
        let align = Self::align();
        let mut kept = if keep {
            Vec::with_capacity(len)
        } else {
            Vec::new()
        };
        let mut buf = vec![0u8; round_up(CHUNK, align)];
        let mut hasher = Sha256::new();
        let mut at = self.slot_start(slot) + self.header_area() as u32;
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len());
            let chunk = &mut buf[..round_up(n, align)];
            self.read(at, chunk)?;
            hasher.update(&chunk[..n]);
            if keep {
                kept.extend_from_slice(&chunk[..n]);
            }
            at += chunk.len() as u32;
            left -= n;
        }
        Ok(if <[u8; 32]>::from(hasher.finalize()) == h.sha256 {
            Ok(keep.then_some(kept))
        } else {
            Err("component does not match its sha256")
        })
    }

    /// Erases the sectors of `from..to` that do not read erased already. A blank sector
    /// is left alone: an erase cut by a power loss can leave even a blank sector
    /// undefined, and the very first store must not turn a region that holds nothing
    /// into damage. (A sector that reads erased is: `program` writes no all-0xFF word.)
    fn erase_dirty(&mut self, from: u32, to: u32) -> Result<(), StoreError> {
        let sector = F::ERASE_SIZE as u32;
        // Whole reads and writes: so are sectors (checked by `new`).
        let mut buf = vec![0u8; round_up(CHUNK, Self::align()).min(F::ERASE_SIZE)];
        let mut at = from;
        while at < to {
            let end = at + sector;
            let (mut blank, mut p) = (true, at);
            while blank && p < end {
                let n = buf.len().min((end - p) as usize);
                self.read(p, &mut buf[..n])?;
                blank = buf[..n].iter().all(|&b| b == 0xFF);
                p += n as u32;
            }
            if !blank {
                self.flash
                    .erase(at, end)
                    .map_err(|e| self.io("erase", &e))?;
            }
            at = end;
        }
        Ok(())
    }

    /// Writes `data` from `at` in whole words, the last padded with 0xFF, leaving out
    /// the words that are all 0xFF: erased flash reads so already, and a word never
    /// written keeps its sector truly erased for `erase_dirty` (on a chip with ECC, a
    /// word written as 0xFF is not).
    fn program(&mut self, at: u32, data: &[u8]) -> Result<(), StoreError> {
        let align = Self::align();
        let whole = data.len() - data.len() % align;
        // The words from `run` on are written when the next all-0xFF word (or the end)
        // is reached: one write per run, not per word.
        let mut run = 0;
        for word in (0..whole).step_by(align) {
            if data[word..word + align].iter().all(|&b| b == 0xFF) {
                self.write(at + run as u32, &data[run..word])?;
                run = word + align;
            }
        }
        self.write(at + run as u32, &data[run..whole])?;
        if whole < data.len() {
            let mut tail = vec![0xFF; align];
            tail[..data.len() - whole].copy_from_slice(&data[whole..]);
            if tail.iter().any(|&b| b != 0xFF) {
                self.write(at + whole as u32, &tail)?;
            }
        }
        Ok(())
    }

    fn write(&mut self, at: u32, bytes: &[u8]) -> Result<(), StoreError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.flash
            .write(at, bytes)
            .map_err(|e| self.io("write", &e))
    }

    /// Reads a record just written back: a write the flash reported done but did not
    /// make is an error now, not a lost floor after the next reboot.
    fn read_back(&mut self, slot: usize, header: &Header) -> Result<(), StoreError> {
        let why = match self.header(slot)? {
            HeaderState::Intact(h) if h == *header => match self.verify(slot, &h, false)? {
                Ok(_) => return Ok(()),
                Err(why) => why,
            },
            _ => "header differs from what was written",
        };
        Err(StoreError::Io {
            op: "verify",
            at: self.at(),
            detail: String::from(why),
        })
    }

    /// After a failed commit, erases the slot's header again, so that what may be half
    /// written is no record (`load` then gives the previous one, or none); if that
    /// fails too, the error says a restart may load it.
    fn withdraw(&mut self, slot: usize, failure: StoreError) -> StoreError {
        let start = self.slot_start(slot);
        let end = start + round_up(self.header_area(), F::ERASE_SIZE) as u32;
        match (self.flash.erase(start, end), failure) {
            (Err(e), StoreError::Io { op, at, detail }) => StoreError::Io {
                op,
                at,
                detail: format!(
                    "{detail}; erasing the record again failed too ({e:?}), so a restart may \
                     load it"
                ),
            },
            (_, failure) => failure,
        }
    }

    /// Both slots' headers.
    fn survey(&mut self) -> Result<[HeaderState; 2], StoreError> {
        Ok([self.header(0)?, self.header(1)?])
    }

    fn corrupt(&self, why: &[(usize, String)]) -> StoreError {
        let detail = why
            .iter()
            .map(|(slot, why)| {
                let name = if *slot == 0 { 'A' } else { 'B' };
                format!("slot {name} at {:#x}: {why}", self.slot_start(*slot))
            })
            .collect::<Vec<_>>()
            .join("; ");
        StoreError::Corrupt {
            at: self.at(),
            detail,
        }
    }
}

impl<F: NorFlash> DeploymentStore for FlashDeploymentStore<F> {
    fn load(&mut self) -> Result<Option<Stored>, StoreError> {
        let states = self.survey()?;
        let intact = intact(&states);
        let mut why = Vec::new();
        if let Some(&(_, top)) = intact.first() {
            for (slot, h) in intact.iter().filter(|(_, h)| h.sequence == top.sequence) {
                match self.verify(*slot, h, true)? {
                    Ok(component) => {
                        return Ok(Some(Stored {
                            sequence: h.sequence,
                            component,
                        }));
                    }
                    Err(e) => why.push((*slot, format!("{e} (sequence {})", h.sequence))),
                }
            }
            return Err(self.corrupt(&why));
        }
        for (slot, s) in states.iter().enumerate() {
            if let HeaderState::Damaged(e) = s {
                why.push((slot, String::from(*e)));
            }
        }
        if why.is_empty() {
            Ok(None)
        } else {
            Err(self.corrupt(&why))
        }
    }

    fn store(&mut self, sequence: u64, component: &[u8]) -> Result<(), StoreError> {
        let align = Self::align();
        let kept = round_up(component.len(), align) <= self.max_component();
        let data = if kept { component } else { &[] };
        let header = Header {
            sequence,
            length: data.len() as u32,
            kept,
            sha256: Sha256::digest(data).into(),
        };
        let intact = intact(&self.survey()?);
        // The new record goes beside the newest intact header, never over it, whatever
        // its component: overwriting it and losing power would leave an older sequence.
        // A newest record that does not check out is damage `load` refuses; so does this.
        if let Some(&(slot, h)) = intact.first() {
            if let Err(why) = self.verify(slot, &h, false)? {
                return Err(self.corrupt(&[(slot, format!("{why} (sequence {})", h.sequence))]));
            }
            // The same record again: a retry after an error that could not withdraw it.
            if h == header {
                return Ok(());
            }
            if sequence <= h.sequence {
                return Err(StoreError::Backwards {
                    at: self.at(),
                    sequence,
                    stored: h.sequence,
                });
            }
        }
        let slot = intact.first().map_or(0, |&(s, _)| 1 - s);
        let start = self.slot_start(slot);
        let used = self.header_area() + round_up(data.len(), align);
        self.erase_dirty(start, start + round_up(used, F::ERASE_SIZE) as u32)?;
        self.program(start + self.header_area() as u32, data)?;
        let mut bytes = vec![0xFF; self.header_area()];
        bytes[..HEADER_LEN].copy_from_slice(&header.encode());
        // From the header's write on, the record may be in the flash: a failure must
        // withdraw it, or the deployment the caller rejects would run after a restart.
        let committed = self
            .flash
            .write(start, &bytes)
            .map_err(|e| self.io("write", &e))
            .and_then(|()| self.read_back(slot, &header));
        committed.map_err(|failure| self.withdraw(slot, failure))
    }
}

#[cfg(test)]
mod tests;
