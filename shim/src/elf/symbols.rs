//! Where an object's named globals are: the section and offset of a symbol, read from the ELF
//! symbol table (clang leaves BTF's `DATASEC` offsets for libbpf to fill in, and orders globals
//! as it likes), and the 8-aligned copy the ELF reader needs to read an object in place.

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};

/// `data` copied into 8-aligned memory (the ELF reader borrows its headers in place).
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    /// A copy of `data`.
    pub fn new(data: &[u8]) -> Aligned {
        let mut words = vec![0u64; data.len().div_ceil(8)];
        for (w, c) in words.iter_mut().zip(data.chunks(8)) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            *w = u64::from_ne_bytes(b);
        }
        Aligned {
            words,
            len: data.len(),
        }
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `words` owns at least `len` initialized bytes (filled from the data in order)
        // and lives as long as the borrow; u8 has no alignment or validity requirements.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// The section name and offset of symbol `name` in the object `data`, if it has one in a
/// section.
pub fn symbol_offset(data: &[u8], name: &str) -> Option<(String, u64)> {
    let copy;
    let data = if data.as_ptr() as usize % 8 == 0 {
        data
    } else {
        copy = Aligned::new(data);
        copy.bytes()
    };
    let elf = object::File::parse(data).ok()?;
    let sym = elf.symbols().find(|s| s.name() == Ok(name))?;
    let object::SymbolSection::Section(i) = sym.section() else {
        return None;
    };
    let sec = elf.section_by_index(i).ok()?.name().ok()?.to_string();
    Some((sec, sym.address()))
}
