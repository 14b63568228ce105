//! Decompression bombs built by hand: a deflate stream of zeros at ~1032:1, wrapped in a one-entry zip.
//!
//! Compressing a gigabyte of zeros for real would take seconds; writing the
//! stream directly takes milliseconds and gives the ratio deflate allows at
//! most: each 258-byte copy costs two bits.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use crate::util::lock;

/// Packs bits least-significant first, as deflate wants.
struct Bits {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        self.acc |= value << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// A Huffman code, whose bits go most-significant first.
    fn code(&mut self, code: u32, len: u32) {
        for i in (0..len).rev() {
            self.put((code >> i) & 1, 1);
        }
    }
    /// `count` zero bits, quickly.
    fn zeros(&mut self, mut count: u64) {
        while count > 0 && self.n != 0 {
            self.put(0, 1);
            count -= 1;
        }
        self.out.resize(self.out.len() + (count / 8) as usize, 0);
        self.put(0, (count % 8) as u32);
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// One dynamic-Huffman deflate block of `1 + 258 × copies` zero bytes.
///
/// Literal/length code: 285 (copy 258) → `0`, literal 0 → `10`, end → `11`;
/// distance code: 0 (distance 1) → `0`, 1 → `1`. Both codes are complete,
/// so every inflater accepts them.
fn deflate_zeros(copies: u64) -> Vec<u8> {
    let mut b = Bits { out: Vec::with_capacity((copies / 4) as usize + 64), acc: 0, n: 0 };
    b.put(1, 1); // final block
    b.put(2, 2); // dynamic Huffman
    b.put(286 - 257, 5); // HLIT: codes up to 285
    b.put(2 - 1, 5); // HDIST: two distance codes
    b.put(18 - 4, 4); // HCLEN: 18 code-length code lengths follow
    // Code-length code: 18 (run of zeros) → `0`, 1 → `10`, 2 → `11`, in the spec's order.
    for sym in [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1] {
        b.put(
            match sym {
                18 => 1,
                1 | 2 => 2,
                _ => 0,
            },
            3,
        );
    }
    let zeros_run = |b: &mut Bits, n: u32| {
        b.code(0, 1);
        b.put(n - 11, 7);
    };
    b.code(0b11, 2); // literal 0: length 2
    zeros_run(&mut b, 138); // literals 1..=138 unused
    zeros_run(&mut b, 117); // literals 139..=255 unused
    b.code(0b11, 2); // end of block: length 2
    zeros_run(&mut b, 28); // lengths 257..=284 unused
    b.code(0b10, 2); // 285: length 1
    b.code(0b10, 2); // distance 0: length 1
    b.code(0b10, 2); // distance 1: length 1
    b.code(0b10, 2); // the data: one literal zero ...
    b.zeros(2 * copies); // ... then copies of 258 bytes at distance 1 (`0` + `0` each)
    b.code(0b11, 2); // end of block
    b.finish()
}

/// CRC-32 of `len` zero bytes, computed once per size per process.
fn crc_of_zeros(len: u64) -> u32 {
    static CACHE: OnceLock<Mutex<HashMap<u64, u32>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(&crc) = lock(cache).get(&len) {
        return crc;
    }
    let chunk = vec![0u8; 1 << 20];
    let mut h = crc32fast::Hasher::new();
    let mut left = len;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        h.update(&chunk[..n]);
        left -= n as u64;
    }
    let crc = h.finalize();
    lock(cache).insert(len, crc);
    crc
}

/// A one-entry zip whose entry `name` inflates to at least `min_size` zero bytes.
///
/// Returns the zip and the entry's real size; the archive writer copies the
/// entry over raw, without inflating it.
pub(crate) fn zip_bomb(name: &str, min_size: u64) -> (Vec<u8>, u64) {
    let copies = min_size.saturating_sub(1).div_ceil(258);
    let size = 1 + 258 * copies;
    let data = deflate_zeros(copies);
    let crc = crc_of_zeros(size);
    let (time, date) = (0x5000u16, 0x5a21u16); // 2025-01-01 10:00, fixed for reproducibility
    let mut local = Vec::new();
    let header = |out: &mut Vec<u8>, central: bool| {
        if central {
            out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            out.extend_from_slice(&0x031eu16.to_le_bytes()); // made by: Unix, spec 3.0
        } else {
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        }
        for v in [20u16, 0, 8, time, date] {
            out.extend_from_slice(&v.to_le_bytes()); // version needed, flags, deflate, time, date
        }
        for v in [crc, data.len() as u32, size as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes()); // no extra field
        if central {
            out.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
            out.extend_from_slice(&(0o100_644u32 << 16).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes()); // local header at offset 0
        }
        out.extend_from_slice(name.as_bytes());
    };
    header(&mut local, false);
    local.extend_from_slice(&data);
    let cd_offset = local.len() as u32;
    header(&mut local, true);
    let cd_size = local.len() as u32 - cd_offset;
    local.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    local.extend_from_slice(&[0, 0, 0, 0, 1, 0, 1, 0]); // disks 0, one entry
    local.extend_from_slice(&cd_size.to_le_bytes());
    local.extend_from_slice(&cd_offset.to_le_bytes());
    local.extend_from_slice(&0u16.to_le_bytes());
    (local, size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn the_bomb_inflates_to_exactly_its_size_in_zeros_with_a_valid_crc() {
        let (zip, size) = zip_bomb("z.bin", 1 << 20);
        assert!(size >= 1 << 20);
        assert!(zip.len() < 2048, "about 1000:1, got {} bytes", zip.len());
        let mut a = zip::ZipArchive::new(std::io::Cursor::new(zip)).expect("a valid zip");
        let mut f = a.by_index(0).expect("one entry");
        assert_eq!(f.size(), size);
        let mut out = Vec::new();
        f.read_to_end(&mut out).expect("inflates, and the CRC matches");
        assert_eq!(out.len() as u64, size);
        assert!(out.iter().all(|&b| b == 0));
    }
}
