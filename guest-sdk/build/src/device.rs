//! Checks of the device profile's core modules: a memory of 1-byte pages, fixed in size,
//! and no code that grows or measures it in pages (which would assume 64 KiB pages).

use wasmparser::{Operator, Parser, Payload};

use crate::BuildError;

/// A linear memory's type, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinearMemory {
    /// Bytes per page: 65,536 by default, 1 with custom page sizes.
    pub page_size: u64,
    /// Initial size in bytes.
    pub initial: u64,
    /// Maximum size in bytes, if bounded.
    pub maximum: Option<u64>,
}

impl LinearMemory {
    fn of(ty: &wasmparser::MemoryType) -> Self {
        let page_size = 1u64 << ty.page_size_log2.unwrap_or(16);
        LinearMemory {
            page_size,
            initial: ty.initial.saturating_mul(page_size),
            maximum: ty.maximum.map(|m| m.saturating_mul(page_size)),
        }
    }
}

/// The first linear memory defined in `wasm`, a core module or a component (searched
/// through its nested modules in order); `None` if there is none or `wasm` does not parse.
pub fn linear_memory(wasm: &[u8]) -> Option<LinearMemory> {
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::MemorySection(reader) = payload.ok()?
            && let Some(ty) = reader.into_iter().next()
        {
            return ty.ok().as_ref().map(LinearMemory::of);
        }
    }
    None
}

/// Checks that the device build of `crate_name` has a fixed memory of 1-byte pages and no
/// `memory.grow` or `memory.size`.
pub(crate) fn check_module(crate_name: &str, module: &[u8]) -> Result<LinearMemory, BuildError> {
    let err = |detail: String| BuildError::DeviceMemory {
        crate_name: crate_name.to_owned(),
        detail,
    };
    let memory = linear_memory(module).ok_or_else(|| err("no linear memory".into()))?;
    if memory.page_size != 1 || memory.maximum != Some(memory.initial) {
        return Err(err(format!(
            "expected a fixed memory of 1-byte pages, found {memory:?}"
        )));
    }
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.map_err(|e| err(e.to_string()))?;
        let Payload::CodeSectionEntry(body) = payload else {
            continue;
        };
        let mut ops = body
            .get_operators_reader()
            .map_err(|e| err(e.to_string()))?;
        while !ops.eof() {
            match ops.read().map_err(|e| err(e.to_string()))? {
                Operator::MemoryGrow { .. } => return Err(err("code calls memory.grow".into())),
                Operator::MemorySize { .. } => return Err(err("code calls memory.size".into())),
                _ => {}
            }
        }
    }
    Ok(memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A module with one memory: limits flags, initial, maximum, page size log2.
    fn module(memory: &[u8], code: &[u8]) -> Vec<u8> {
        let mut m = b"\0asm\x01\0\0\0".to_vec();
        if !code.is_empty() {
            // type () -> (), one function of that type.
            m.extend([1, 4, 1, 0x60, 0, 0]);
            m.extend([3, 2, 1, 0]);
        }
        m.extend([5, memory.len() as u8 + 1, 1]);
        m.extend(memory);
        if !code.is_empty() {
            m.extend([10, code.len() as u8 + 3, 1, code.len() as u8 + 1, 0]);
            m.extend(code);
        }
        m
    }

    #[test]
    fn fixed_byte_pages_pass() {
        // flags 0x09: maximum and page size present; 100 bytes; log2 0.
        let ok = module(&[0x09, 100, 100, 0], &[0x0b]);
        assert_eq!(
            check_module("c", &ok).ok(),
            Some(LinearMemory {
                page_size: 1,
                initial: 100,
                maximum: Some(100)
            })
        );
    }

    #[test]
    fn default_pages_growth_and_measuring_are_refused() {
        let default_pages = module(&[0x01, 1, 1], &[]);
        assert_eq!(
            linear_memory(&default_pages).map(|m| (m.page_size, m.initial)),
            Some((65536, 65536))
        );
        assert!(check_module("c", &default_pages).is_err());
        let growable = module(&[0x08, 100, 0], &[]);
        assert!(check_module("c", &growable).is_err());
        // memory.size 0; drop; end
        let measures = module(&[0x09, 100, 100, 0], &[0x3f, 0, 0x1a, 0x0b]);
        assert!(matches!(
            check_module("c", &measures),
            Err(BuildError::DeviceMemory { detail, .. }) if detail.contains("memory.size")
        ));
        // i32.const 1; memory.grow 0; drop; end
        let grows = module(&[0x09, 100, 100, 0], &[0x41, 1, 0x40, 0, 0x1a, 0x0b]);
        assert!(check_module("c", &grows).is_err());
        assert!(linear_memory(b"\0asm\x01\0\0\0").is_none());
    }
}
