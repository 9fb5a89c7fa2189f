//! Complete gzip members from a reused deflate state (no allocation per member): header as Python's
//! `zlib.compressobj(level, DEFLATED, 31)` writes it, raw deflate, CRC-32 + size trailer.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

pub struct GzipMembers {
    deflate: Compress,
}

impl GzipMembers {
    /// `level` 0..=9.
    pub fn new(level: u32) -> Self {
        GzipMembers {
            deflate: Compress::new(Compression::new(level.min(9)), false),
        }
    }

    /// Appends one complete gzip member holding `data` to `out`.
    pub fn member(&mut self, data: &[u8], out: &mut Vec<u8>) {
        // ID1 ID2 CM FLG MTIME(4) XFL OS(3 = Unix)
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        self.deflate.reset();
        let mut input = data;
        loop {
            out.reserve(input.len() / 2 + 1024);
            let before_in = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, out, FlushCompress::Finish)
                .expect("deflate into a vector cannot fail");
            input = &input[(self.deflate.total_in() - before_in) as usize..];
            if status == Status::StreamEnd {
                break;
            }
        }
        let mut crc = Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn members_concatenate_and_decompress() {
        let mut g = GzipMembers::new(6);
        let mut out = Vec::new();
        let a: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        g.member(&a, &mut out);
        g.member(b"tail\n", &mut out);
        g.member(b"", &mut out);
        let mut s = Vec::new();
        flate2::read::MultiGzDecoder::new(&out[..])
            .read_to_end(&mut s)
            .unwrap();
        let mut expected = a.clone();
        expected.extend_from_slice(b"tail\n");
        assert_eq!(s, expected);
        assert!(out.len() < a.len() / 3);
    }
}
