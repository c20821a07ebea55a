//! The workspace patches rustic_cdc so that a Rabin hasher reuses the tables last computed on its
//! thread; a hasher made that way must hash exactly as one whose tables were computed afresh, or
//! chunk boundaries (and with them deduplication against restic's chunks) would change.

use rustic_cdc::{Polynom64, Rabin64, RollingHash64};

fn hashes(mut rabin: Rabin64, data: &[u8]) -> Vec<Polynom64> {
    data.iter()
        .map(|b| {
            rabin.slide(*b);
            *rabin.get_hash()
        })
        .collect()
}

#[test]
fn kept_tables_hash_as_fresh_ones() {
    // restic's default polynomial and another irreducible one, as two repositories would have.
    let (p, q): (Polynom64, Polynom64) = (0x003D_A335_8B4D_C173, 0x0029_3A36_4DE6_F6C9);
    let data: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let first = hashes(Rabin64::new_with_polynom(6, &p), &data);
    let other = hashes(Rabin64::new_with_polynom(6, &q), &data);
    let again_after_other = hashes(Rabin64::new_with_polynom(6, &p), &data);
    let kept = hashes(Rabin64::new_with_polynom(6, &p), &data);
    let other_window = hashes(Rabin64::new_with_polynom(5, &p), &data);
    assert_eq!(first, again_after_other);
    assert_eq!(first, kept);
    assert_ne!(first, other, "another polynomial hashes differently");
    assert_ne!(
        first, other_window,
        "another window size hashes differently"
    );
    // A fresh thread has no kept tables: it computes them and must agree.
    let fresh = std::thread::spawn(move || hashes(Rabin64::new_with_polynom(6, &p), &data))
        .join()
        .expect("the hashing thread");
    assert_eq!(first, fresh);
}
