//! NOR flash in RAM (feature `flash-store`): what tests give a
//! [`FlashDeploymentStore`](super::FlashDeploymentStore), with the rules of real NOR
//! flash enforced, so a store that works here does not rely on anything a chip lacks.

use alloc::vec;
use alloc::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// NOR flash in RAM, erased (0xFF) at first: reads of `READ` bytes, writes of `WRITE`
/// bytes that can only clear bits, erases of whole `ERASE`-byte sectors back to 0xFF.
/// Offsets and lengths off those sizes are errors, as is a write that would set a bit an
/// earlier write cleared, and — as `NorFlash` says, for chips with ECC or encryption — a
/// second write to a word not erased since its first, even one that clears bits only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryNorFlash<const READ: usize, const WRITE: usize, const ERASE: usize> {
    bytes: Vec<u8>,
    /// Per `WRITE`-byte word: written since its last erase.
    programmed: Vec<bool>,
}

/// What [`MemoryNorFlash`] refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryNorFlashError {
    /// An offset or length is not a multiple of the operation's size.
    NotAligned,
    /// The operation reaches past the end of the flash.
    OutOfBounds,
    /// A write would turn a 0 bit back into 1 at this offset (only an erase can).
    NotErased {
        /// The offset of the first such byte.
        offset: u32,
    },
    /// A write to the word at this offset, written already since its last erase.
    Rewritten {
        /// The word's offset.
        offset: u32,
    },
}

impl NorFlashError for MemoryNorFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            MemoryNorFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            MemoryNorFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            MemoryNorFlashError::NotErased { .. } | MemoryNorFlashError::Rewritten { .. } => {
                NorFlashErrorKind::Other
            }
        }
    }
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> MemoryNorFlash<READ, WRITE, ERASE> {
    /// Erased flash of `capacity` bytes (the sizes must not be 0).
    pub fn new(capacity: usize) -> Self {
        const { assert!(READ > 0 && WRITE > 0 && ERASE > 0) };
        MemoryNorFlash {
            bytes: vec![0xFF; capacity],
            programmed: vec![false; capacity.div_ceil(WRITE)],
        }
    }

    /// Its contents, as a chip reader would dump them.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its contents, for changing behind the flash rules' back (damage, in tests); such
    /// changes do not count as writes.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    fn range(
        &self,
        offset: u32,
        len: usize,
        align: usize,
    ) -> Result<core::ops::Range<usize>, MemoryNorFlashError> {
        let start = offset as usize;
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(MemoryNorFlashError::NotAligned);
        }
        match start.checked_add(len) {
            Some(end) if end <= self.bytes.len() => Ok(start..end),
            _ => Err(MemoryNorFlashError::OutOfBounds),
        }
    }
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> ErrorType
    for MemoryNorFlash<READ, WRITE, ERASE>
{
    type Error = MemoryNorFlashError;
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> ReadNorFlash
    for MemoryNorFlash<READ, WRITE, ERASE>
{
    const READ_SIZE: usize = READ;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, bytes.len(), READ)?;
        bytes.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> NorFlash
    for MemoryNorFlash<READ, WRITE, ERASE>
{
    const WRITE_SIZE: usize = WRITE;
    const ERASE_SIZE: usize = ERASE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = (to as usize)
            .checked_sub(from as usize)
            .ok_or(MemoryNorFlashError::OutOfBounds)?;
        let range = self.range(from, len, ERASE)?;
        let words = range.start / WRITE..range.end.div_ceil(WRITE);
        self.bytes[range].fill(0xFF);
        self.programmed[words].fill(false);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, bytes.len(), WRITE)?;
        let start = range.start;
        let words = start / WRITE..range.end / WRITE;
        if let Some(i) = self.programmed[words.clone()].iter().position(|&p| p) {
            return Err(MemoryNorFlashError::Rewritten {
                offset: ((words.start + i) * WRITE) as u32,
            });
        }
        let target = &mut self.bytes[range];
        if let Some(i) = target
            .iter()
            .zip(bytes)
            .position(|(old, new)| new & !old != 0)
        {
            return Err(MemoryNorFlashError::NotErased {
                offset: (start + i) as u32,
            });
        }
        for (old, new) in target.iter_mut().zip(bytes) {
            *old &= new;
        }
        self.programmed[words].fill(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_clear_bits_once_and_erases_whole_sectors() {
        let mut f = MemoryNorFlash::<4, 4, 16>::new(64);
        assert_eq!(f.capacity(), 64);
        f.write(4, &[0x0F, 0xF0, 0xFF, 0x00]).expect("write");
        // A second write to a word is refused, even one that clears bits only.
        assert_eq!(
            f.write(0, &[0x0E, 0xF0, 0x7F, 0x00, 0, 0, 0, 0]),
            Err(MemoryNorFlashError::Rewritten { offset: 4 })
        );
        // Behind the rules' back a word can hold what a write cannot set.
        f.bytes_mut()[8] = 0x0F;
        assert_eq!(
            f.write(8, &[0xF0, 0, 0, 0]),
            Err(MemoryNorFlashError::NotErased { offset: 8 })
        );
        f.write(8, &[0x0E, 0, 0, 0])
            .expect("clears bits of a word not written");
        let mut got = [0; 8];
        f.read(0, &mut got).expect("read");
        assert_eq!(got, [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0xF0, 0xFF, 0x00]);
        assert_eq!(f.write(2, &[0; 4]), Err(MemoryNorFlashError::NotAligned));
        assert_eq!(f.write(4, &[0; 3]), Err(MemoryNorFlashError::NotAligned));
        assert_eq!(f.read(1, &mut got), Err(MemoryNorFlashError::NotAligned));
        assert_eq!(f.write(64, &[0; 4]), Err(MemoryNorFlashError::OutOfBounds));
        assert_eq!(f.erase(4, 20), Err(MemoryNorFlashError::NotAligned));
        assert_eq!(f.erase(16, 0), Err(MemoryNorFlashError::OutOfBounds));
        assert_eq!(f.erase(48, 80), Err(MemoryNorFlashError::OutOfBounds));
        f.write(16, &[0; 4]).expect("write");
        f.erase(0, 16).expect("erase");
        assert!(f.bytes()[..16].iter().all(|&b| b == 0xFF));
        assert_eq!(f.bytes()[16], 0);
        // An erased word can be written again; one outside the erase cannot.
        f.write(4, &[0; 4]).expect("write after erase");
        assert_eq!(
            f.write(16, &[0; 4]),
            Err(MemoryNorFlashError::Rewritten { offset: 16 })
        );
    }
}
