//! The canonical ABI of the participant world, by hand: reading (lifting) values from a
//! guest's linear memory with the checks the component model requires.
//!
//! Only the world's types appear: strings (UTF-8), `list<u8>`, lists of records, the
//! `message`, `port`, `definition` and `nack` records, enums, `option<string>`, `bool`
//! and `result<_, E>`. Any violation (out of bounds, misalignment, invalid UTF-8, a
//! discriminant out of range) is an [`AbiError`], which the caller turns into a trap,
//! exactly where wasmtime's lifting fails.
//!
//! Layouts (size, alignment) used here, all derived from the canonical ABI:
//!
//! | type | size | align | fields at |
//! | --- | --- | --- | --- |
//! | `string`, `list<T>` | 8 | 4 | ptr 0, len 4 |
//! | `tuple<string, string>` | 16 | 4 | 0, 8 |
//! | `option<string>` | 12 | 4 | tag 0, payload 4 |
//! | `port` | 40 | 4 | id 0, type 8, description 16, schema 24, parameter 36 |
//! | `definition` | 40 | 4 | component 0, label 8, icon 16, inports 24, outports 32 |
//! | `result<_, nack>` | 16 | 4 | tag 0, kind 4, reason 8 |
//! | `result<_, send-error>` | 2 | 1 | tag 0, error 1 |

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::definition::{Definition, PortDef};
use crate::fault::FaultKind;
use crate::message::Message;

/// A canonical ABI violation by the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AbiError(pub(crate) String);

impl fmt::Display for AbiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err(text: impl Into<String>) -> AbiError {
    AbiError(text.into())
}

/// A view of one guest memory for lifting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Guest<'a> {
    pub(crate) mem: &'a [u8],
}

impl<'a> Guest<'a> {
    /// `len` bytes at `ptr`, bounds-checked.
    pub(crate) fn bytes(&self, ptr: u32, len: u32) -> Result<&'a [u8], AbiError> {
        let start = ptr as usize;
        start
            .checked_add(len as usize)
            .and_then(|end| self.mem.get(start..end))
            .ok_or_else(|| {
                err(format!(
                    "pointer/length out of bounds: {ptr}+{len} beyond {} bytes",
                    self.mem.len()
                ))
            })
    }

    fn u8_at(&self, ptr: u32) -> Result<u8, AbiError> {
        Ok(self.bytes(ptr, 1)?[0])
    }

    fn u32_at(&self, ptr: u32) -> Result<u32, AbiError> {
        let b = self.bytes(ptr, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A record field at `base + offset`, checked for overflow.
    fn at(base: u32, offset: u32) -> Result<u32, AbiError> {
        base.checked_add(offset)
            .ok_or_else(|| err("record address overflows"))
    }

    /// A string given as flat (ptr, len).
    pub(crate) fn string(&self, ptr: u32, len: u32) -> Result<String, AbiError> {
        let bytes = self.bytes(ptr, len)?;
        core::str::from_utf8(bytes)
            .map(String::from)
            .map_err(|_| err("invalid utf-8 in a string"))
    }

    /// A string stored as (ptr, len) at `addr`.
    fn string_at(&self, addr: u32) -> Result<String, AbiError> {
        let ptr = self.u32_at(addr)?;
        let len = self.u32_at(Self::at(addr, 4)?)?;
        self.string(ptr, len)
    }

    /// The element addresses of a list of `len` elements of `size` bytes at `ptr`.
    fn elements(&self, ptr: u32, len: u32, size: u32, align: u32) -> Result<Vec<u32>, AbiError> {
        if !ptr.is_multiple_of(align) {
            return Err(err(format!("list pointer {ptr} not aligned to {align}")));
        }
        let total = len
            .checked_mul(size)
            .ok_or_else(|| err("list length overflows"))?;
        self.bytes(ptr, total)?;
        Ok((0..len).map(|i| ptr + i * size).collect())
    }

    /// `list<u8>` given as flat (ptr, len).
    pub(crate) fn byte_list(&self, ptr: u32, len: u32) -> Result<Vec<u8>, AbiError> {
        Ok(self.bytes(ptr, len)?.to_vec())
    }

    /// `list<tuple<string, string>>` given as flat (ptr, len).
    pub(crate) fn pairs(&self, ptr: u32, len: u32) -> Result<Vec<(String, String)>, AbiError> {
        self.elements(ptr, len, 16, 4)?
            .into_iter()
            .map(|e| Ok((self.string_at(e)?, self.string_at(Self::at(e, 8)?)?)))
            .collect()
    }

    /// A `message` given as its 6 flat values.
    pub(crate) fn message(&self, flat: [u32; 6]) -> Result<Message, AbiError> {
        let [ct_ptr, ct_len, data_ptr, data_len, md_ptr, md_len] = flat;
        Ok(Message {
            content_type: self.string(ct_ptr, ct_len)?,
            data: self.byte_list(data_ptr, data_len)?,
            metadata: self.pairs(md_ptr, md_len)?,
        })
    }

    fn check_return_area(ptr: u32, align: u32) -> Result<(), AbiError> {
        if ptr.is_multiple_of(align) {
            Ok(())
        } else {
            Err(err(format!("return pointer {ptr} not aligned to {align}")))
        }
    }

    /// A `definition` stored at the return area `ret`.
    pub(crate) fn definition(&self, ret: u32) -> Result<Definition, AbiError> {
        Self::check_return_area(ret, 4)?;
        let ports = |addr: u32| -> Result<Vec<PortDef>, AbiError> {
            let ptr = self.u32_at(addr)?;
            let len = self.u32_at(Self::at(addr, 4)?)?;
            self.elements(ptr, len, 40, 4)?
                .into_iter()
                .map(|p| self.port(p))
                .collect()
        };
        Ok(Definition {
            component: self.string_at(ret)?,
            label: self.string_at(Self::at(ret, 8)?)?,
            icon: self.string_at(Self::at(ret, 16)?)?,
            inports: ports(Self::at(ret, 24)?)?,
            outports: ports(Self::at(ret, 32)?)?,
        })
    }

    fn port(&self, p: u32) -> Result<PortDef, AbiError> {
        let schema = match self.u8_at(Self::at(p, 24)?)? {
            0 => None,
            1 => Some(self.string_at(Self::at(p, 28)?)?),
            n => return Err(err(format!("invalid option discriminant {n}"))),
        };
        Ok(PortDef {
            id: self.string_at(p)?,
            type_: self.string_at(Self::at(p, 8)?)?,
            description: self.string_at(Self::at(p, 16)?)?,
            schema,
            parameter: self.u8_at(Self::at(p, 36)?)? != 0,
        })
    }

    /// A `result<_, nack>` stored at the return area `ret`: `Ok(Ok(()))` or the nack.
    pub(crate) fn nack_result(
        &self,
        ret: u32,
    ) -> Result<Result<(), (FaultKind, String)>, AbiError> {
        Self::check_return_area(ret, 4)?;
        match self.u8_at(ret)? {
            0 => Ok(Ok(())),
            1 => {
                let kind = match self.u8_at(Self::at(ret, 4)?)? {
                    0 => FaultKind::InvalidInput,
                    1 => FaultKind::Unavailable,
                    2 => FaultKind::Internal,
                    n => return Err(err(format!("invalid enum discriminant {n}"))),
                };
                Ok(Err((kind, self.string_at(Self::at(ret, 8)?)?)))
            }
            n => Err(err(format!("invalid result discriminant {n}"))),
        }
    }
}

/// The `send-error` cases, as stored in `result<_, send-error>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendError {
    UnknownPort = 0,
    TooLarge = 1,
    TooMany = 2,
}

/// The two bytes of `result<_, send-error>`.
pub(crate) fn send_result(result: Result<(), SendError>) -> [u8; 2] {
    match result {
        Ok(()) => [0, 0],
        Err(e) => [1, e as u8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn put(mem: &mut [u8], at: usize, v: u32) {
        mem[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn strings_are_bounds_and_utf8_checked() {
        let mut mem = [0u8; 64];
        mem[10..13].copy_from_slice(b"abc");
        let g = Guest { mem: &mem };
        assert_eq!(g.string(10, 3), Ok("abc".into()));
        assert!(g.string(62, 3).is_err());
        assert!(g.string(u32::MAX, 2).is_err());
        mem[10] = 0xff;
        assert!(Guest { mem: &mem }.string(10, 3).is_err());
    }

    #[test]
    fn nack_results_and_bad_discriminants() {
        let mut mem = [0u8; 64];
        mem[40..43].copy_from_slice(b"bad");
        mem[0] = 1;
        mem[4] = 2;
        put(&mut mem, 8, 40);
        put(&mut mem, 12, 3);
        let g = Guest { mem: &mem };
        assert_eq!(
            g.nack_result(0),
            Ok(Err((FaultKind::Internal, "bad".into())))
        );
        assert!(g.nack_result(2).is_err(), "misaligned return area");
        mem[4] = 3;
        assert!(Guest { mem: &mem }.nack_result(0).is_err());
        mem[0] = 2;
        assert!(Guest { mem: &mem }.nack_result(0).is_err());
    }

    #[test]
    fn pairs_need_aligned_in_bounds_lists() {
        let mut mem = [0u8; 64];
        mem[48..50].copy_from_slice(b"kv");
        put(&mut mem, 0, 48);
        put(&mut mem, 4, 1);
        put(&mut mem, 8, 49);
        put(&mut mem, 12, 1);
        let g = Guest { mem: &mem };
        assert_eq!(g.pairs(0, 1), Ok(vec![("k".into(), "v".into())]));
        assert!(g.pairs(2, 1).is_err());
        assert!(g.pairs(0, 5).is_err());
        assert!(g.pairs(0, u32::MAX).is_err());
    }
}
