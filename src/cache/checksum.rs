//! A fast checksum that catches accidental corruption of stored records (a
//! flipped bit, a truncated or spliced value). It is no defence against a
//! deliberate forger: whoever can write the store can write any record.
//!
//! Four independent lanes take 8-byte words; each step `rotl((lane ^ word) * odd, 31)`
//! is a bijection in both the lane and the word, so changing any one word
//! always changes its lane, and the final fold is a bijection in each lane, so
//! it always changes the result. It runs several times faster than a table
//! CRC-32 in wasm, which matters because every hit checks its whole record.

const MUL: [u64; 4] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0xD6E8_FEB8_6659_FD93,
];

/// The checksum of `bytes`.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut lanes = MUL;
    let mut blocks = bytes.chunks_exact(32);
    for block in &mut blocks {
        mix_block(&mut lanes, block);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut padded = [0u8; 32];
        padded[..tail.len()].copy_from_slice(tail);
        mix_block(&mut lanes, &padded);
    }
    // The length tells a zero-padded tail from real zero bytes.
    let mut h = (bytes.len() as u64).wrapping_mul(MUL[0]);
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(MUL[1]).rotate_left(27);
    }
    h ^ (h >> 32)
}

#[inline(always)]
fn mix_block(lanes: &mut [u64; 4], block: &[u8]) {
    for (i, lane) in lanes.iter_mut().enumerate() {
        let word = u64::from_le_bytes(block[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        *lane = (*lane ^ word).wrapping_mul(MUL[i]).rotate_left(31);
    }
}

#[cfg(test)]
mod tests {
    use super::checksum;

    #[test]
    fn every_single_bit_flip_changes_the_checksum() {
        let data: Vec<u8> = (0..100u32).map(|i| (i * 37 % 251) as u8).collect();
        let base = checksum(&data);
        for byte in 0..data.len() {
            for bit in 0..8 {
                let mut bad = data.clone();
                bad[byte] ^= 1 << bit;
                assert_ne!(checksum(&bad), base, "flip of bit {bit} in byte {byte}");
            }
        }
    }

    #[test]
    fn length_and_order_matter() {
        assert_ne!(checksum(b"abc"), checksum(b"abc\0"));
        assert_ne!(checksum(b""), checksum(b"\0"));
        let a: Vec<u8> = (0..64).collect();
        let mut swapped = a.clone();
        swapped.swap(0, 8);
        assert_ne!(checksum(&a), checksum(&swapped));
    }

    #[test]
    fn pinned_value() {
        // The record format depends on this function: a change must bump the record version.
        assert_eq!(checksum(b"post-cache record"), PINNED);
    }

    const PINNED: u64 = 10358935961798608893;
}
