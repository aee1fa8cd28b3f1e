//! NOR flash in RAM (feature `flash-store`): what tests give a
//! [`FlashDeploymentStore`](super::FlashDeploymentStore), with the rules of real NOR
//! flash enforced, so a store that works here does not rely on anything a chip lacks.

use alloc::vec;
use alloc::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// `CAPACITY` bytes of NOR flash in RAM, erased (0xFF) at first: reads of `READ` bytes,
/// writes of `WRITE` bytes that can only clear bits, erases of whole `ERASE`-byte
/// sectors back to 0xFF. Offsets and lengths off those sizes are errors, as is a write
/// that would set a bit an earlier write cleared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryNorFlash<const READ: usize, const WRITE: usize, const ERASE: usize> {
    bytes: Vec<u8>,
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
}

impl NorFlashError for MemoryNorFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            MemoryNorFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            MemoryNorFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            MemoryNorFlashError::NotErased { .. } => NorFlashErrorKind::Other,
        }
    }
}

impl<const READ: usize, const WRITE: usize, const ERASE: usize> MemoryNorFlash<READ, WRITE, ERASE> {
    /// Erased flash of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        MemoryNorFlash {
            bytes: vec![0xFF; capacity],
        }
    }

    /// Its contents, as a chip reader would dump them.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Its contents, for changing behind the flash rules' back (damage, in tests).
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
        self.bytes[range].fill(0xFF);
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, bytes.len(), WRITE)?;
        let start = range.start;
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_only_clear_bits_and_erases_whole_sectors() {
        let mut f = MemoryNorFlash::<4, 4, 16>::new(64);
        assert_eq!(f.capacity(), 64);
        f.write(4, &[0x0F, 0xF0, 0xFF, 0x00]).expect("write");
        // Clearing more bits is fine; setting one back is not.
        f.write(4, &[0x0E, 0xF0, 0x7F, 0x00]).expect("clear bits");
        assert_eq!(
            f.write(4, &[0x0F, 0xF0, 0x7F, 0x00]),
            Err(MemoryNorFlashError::NotErased { offset: 4 })
        );
        let mut got = [0; 8];
        f.read(0, &mut got).expect("read");
        assert_eq!(got, [0xFF, 0xFF, 0xFF, 0xFF, 0x0E, 0xF0, 0x7F, 0x00]);
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
    }
}
