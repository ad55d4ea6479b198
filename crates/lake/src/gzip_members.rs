//! gzip members from one reused deflate state.
//!
//! The lake writer appends each partition's buffered lines to its file as one gzip member
//! (RFC 1952: readers of concatenated members see one stream). A historical import makes
//! thousands of members of a few tens of kilobytes, and a new `GzEncoder` per member sets up
//! a new deflate state each time: zlib-rs zeroes its window and tables, hundreds of kilobytes,
//! which cost as much as compressing the member itself. [`GzipMembers`] keeps one raw deflate
//! state and resets it between members, writing the member's header and trailer itself (what
//! `GzEncoder` writes: no name, no time, CRC-32 and length modulo 2^32).

use flate2::{Compress, Compression, FlushCompress, Status};

/// The 10-byte header of every member: magic, deflate, no flags, no time, the compression
/// level's `XFL` as `GzEncoder` sets it, unknown operating system.
fn header(level: Compression) -> [u8; 10] {
    let extra_flags = if level.level() >= Compression::best().level() {
        2
    } else if level.level() <= Compression::fast().level() {
        4
    } else {
        0
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, extra_flags, 0xff]
}

/// Compresses buffers into complete gzip members, reusing one deflate state.
pub struct GzipMembers {
    deflate: Compress,
    header: [u8; 10],
}

impl GzipMembers {
    pub fn new(level: Compression) -> Self {
        GzipMembers {
            deflate: Compress::new(level, false),
            header: header(level),
        }
    }

    /// Appends the concatenation of `parts` to `out` as one complete gzip member; `crc` is the
    /// CRC-32 of that concatenation, which the caller takes as it builds the parts: checksumming
    /// bytes as they are written, while in the cache, spares reading them all back from memory
    /// once more here.
    pub fn append_member<P: AsRef<[u8]>>(
        &mut self,
        parts: &[P],
        crc: crc32fast::Hasher,
        out: &mut Vec<u8>,
    ) {
        self.deflate.reset();
        out.extend_from_slice(&self.header);
        let mut length = 0u32;
        for part in parts {
            let part = part.as_ref();
            // ISIZE is the length modulo 2^32 (RFC 1952, 2.3.1).
            length = length.wrapping_add(part.len() as u32);
            self.deflate(part, FlushCompress::None, out);
        }
        self.deflate(&[], FlushCompress::Finish, out);
        out.extend_from_slice(&crc.finalize().to_le_bytes());
        out.extend_from_slice(&length.to_le_bytes());
    }

    /// Feeds all of `input` to the deflate state, growing `out` as the output needs; with
    /// `Finish`, until the deflate stream is complete.
    fn deflate(&mut self, mut input: &[u8], flush: FlushCompress, out: &mut Vec<u8>) {
        loop {
            if out.capacity() - out.len() < 64 {
                // Lake lines shrink several times over: a quarter of the input is a fair start.
                out.reserve((input.len() / 4).max(out.capacity()).max(4096));
            }
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, out, flush)
                .expect("deflating to memory cannot fail");
            input = &input[(self.deflate.total_in() - before) as usize..];
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                // Deflate stopped for want of input, not of room for its output.
                _ => input.is_empty() && out.len() < out.capacity(),
            };
            if done {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use flate2::read::MultiGzDecoder;
    use flate2::write::GzEncoder;

    use super::*;

    fn crc_of<P: AsRef<[u8]>>(parts: &[P]) -> crc32fast::Hasher {
        let mut crc = crc32fast::Hasher::new();
        for part in parts {
            crc.update(part.as_ref());
        }
        crc
    }

    fn decompressed(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    fn lines(count: usize, seed: usize) -> Vec<u8> {
        (0..count)
            .map(|i| format!("{{\"n\":{},\"host\":\"web-{}\"}}\n", i * seed, i % 7))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn members_from_one_state_read_back_as_one_stream() {
        let mut members = GzipMembers::new(Compression::fast());
        let parts = [lines(3000, 1), Vec::new(), lines(1, 5), lines(20_000, 3)];
        let mut out = Vec::new();
        for part in &parts {
            members.append_member(&[part], crc_of(&[part]), &mut out);
        }
        assert_eq!(decompressed(&out), parts.concat());
    }

    #[test]
    fn a_member_is_byte_for_byte_what_gz_encoder_writes() {
        for level in [
            Compression::fast(),
            Compression::new(6),
            Compression::best(),
        ] {
            let mut members = GzipMembers::new(level);
            let mut out = Vec::new();
            // The second member shows the reset leaves nothing of the first behind.
            let first = lines(500, 2);
            members.append_member(&[&first], crc_of(&[&first]), &mut out);
            out.clear();
            let data = lines(800, 9);
            members.append_member(&[&data], crc_of(&[&data]), &mut out);
            let mut encoder = GzEncoder::new(Vec::new(), level);
            encoder.write_all(&data).unwrap();
            assert_eq!(out, encoder.finish().unwrap(), "level {}", level.level());
        }
    }

    #[test]
    fn a_member_of_many_parts_is_the_member_of_their_concatenation() {
        let data = lines(5000, 7);
        let mut whole = Vec::new();
        GzipMembers::new(Compression::fast()).append_member(&[&data], crc_of(&[&data]), &mut whole);
        let parts: Vec<&[u8]> = vec![&data[..1], &data[1..70_000], &[], &data[70_000..]];
        let mut split = Vec::new();
        GzipMembers::new(Compression::fast()).append_member(&parts, crc_of(&parts), &mut split);
        assert_eq!(split, whole);
        assert_eq!(decompressed(&split), data);
    }

    #[test]
    fn an_incompressible_member_larger_than_its_first_reservation_is_complete() {
        // Pseudo-random bytes do not shrink: the output outgrows `data.len() / 2`.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let data: Vec<u8> = (0..200_000)
            .map(|_| {
                // xorshift64
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let mut members = GzipMembers::new(Compression::fast());
        let mut out = Vec::new();
        members.append_member(&[&data], crc_of(&[&data]), &mut out);
        assert!(out.len() > data.len() / 2);
        assert_eq!(decompressed(&out), data);
    }
}
