//! RFC 6962 / RFC 9162 Merkle tree: leaf and node hashing, roots, inclusion and consistency proofs and their verification.
//!
//! Generation follows the recursive definitions of RFC 6962 section 2.1 (split at the largest power of two
//! smaller than the size); verification follows the iterative algorithms of RFC 9162 sections 2.1.3.2 and
//! 2.1.4.2, preceded by an exact proof-length check derived from the same recursive definitions, so a proof
//! with a missing or extra element is refused before any hashing.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain-separation prefixes of RFC 6962 section 2.1: a leaf can never be confused with an interior node.
const LEAF_PREFIX: u8 = 0x00;
const NODE_PREFIX: u8 = 0x01;

/// The hash of one log entry: SHA-256(0x00 || entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([LEAF_PREFIX]);
    h.update(entry);
    h.finalize().into()
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([NODE_PREFIX]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of the empty string (RFC 6962 MTH({})).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `n`, for `n >= 2` (RFC 6962's `k`).
/// Returns 0 for `n < 2`, where no split exists.
fn split_point_u64(n: u64) -> u64 {
    if n < 2 {
        return 0;
    }
    // n - 1 >= 1, so it has at most 63 leading zeros and the shift stays below 64.
    1u64 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// `split_point_u64` for slice lengths.
fn split_point(n: usize) -> usize {
    if n < 2 {
        return 0;
    }
    1usize << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Splits a subtree of at least two leaves into its RFC 6962 left (a perfect tree of `k` leaves) and right parts.
fn split(leaves: &[Hash]) -> (&[Hash], &[Hash]) {
    // The clamp keeps split_at total; for len >= 2 the split point is already below len.
    leaves.split_at(split_point(leaves.len()).min(leaves.len()))
}

/// Root of the tree over these leaf hashes (MTH), O(n).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => empty_root(),
        [only] => *only,
        _ => {
            let (left, right) = split(leaves);
            node_hash(&root(left), &root(right))
        }
    }
}

/// The right edge of the tree (one subtree root per set bit of the size): O(log n) append and root.
///
/// `nodes` holds the roots of the perfect subtrees that make up the tree, largest (leftmost) first; their
/// sizes are exactly the set bits of `size`, which is what lets `push` merge like a binary counter carries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves pushed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        let mut bits = self.size;
        // Each trailing one bit of the old size is a perfect subtree of the same height as `carry`:
        // merge with it, exactly like a carry in binary addition.
        while bits & 1 == 1 {
            match self.nodes.pop() {
                Some(left) => carry = node_hash(&left, &carry),
                // Unreachable while the invariant holds; stopping keeps the structure usable rather than panicking.
                None => break,
            }
            bits >>= 1;
        }
        self.nodes.push(carry);
        // 2^64 appends cannot happen in practice; saturating keeps the arithmetic total.
        self.size = self.size.saturating_add(1);
    }

    /// The root of the tree of all leaves pushed: equals `root(all leaves pushed)`, `empty_root()` when empty.
    pub fn root(&self) -> Hash {
        // MTH splits off the largest perfect subtree first, so the root nests to the right:
        // node(n0, node(n1, node(..., n_last))).
        let mut iter = self.nodes.iter().rev();
        match iter.next() {
            None => empty_root(),
            Some(last) => iter.fold(*last, |acc, left| node_hash(left, &acc)),
        }
    }
}

/// RFC 6962 section 2.1.1 PATH(index, D[size]): audit path for leaf `index` in the tree of the first `size` leaves.
/// None if index >= size or size > leaves.len().
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let tree = leaves.get(..usize::try_from(size).ok()?)?;
    let index = usize::try_from(index).ok()?;
    let mut proof = Vec::new();
    path(index, tree, &mut proof);
    Some(proof)
}

/// PATH(m, D[n]) appended to `out`, deepest sibling first. Requires `m < leaves.len()`.
fn path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    if leaves.len() < 2 {
        return;
    }
    let (left, right) = split(leaves);
    if m < left.len() {
        path(m, left, out);
        out.push(root(right));
    } else {
        path(m - left.len(), right, out);
        out.push(root(left));
    }
}

/// RFC 6962 section 2.1.2 PROOF(old_size, D[new_size]). None if old_size > new_size or new_size > leaves.len(). Empty proof when old_size == new_size or old_size == 0.
pub fn consistency_proof(leaves: &[Hash], old_size: u64, new_size: u64) -> Option<Vec<Hash>> {
    if old_size > new_size {
        return None;
    }
    let tree = leaves.get(..usize::try_from(new_size).ok()?)?;
    let mut proof = Vec::new();
    if old_size == 0 || old_size == new_size {
        return Some(proof);
    }
    subproof(usize::try_from(old_size).ok()?, tree, true, &mut proof);
    Some(proof)
}

/// SUBPROOF(m, D[n], complete) appended to `out`. `complete` is RFC 6962's `b`: whether the subtree of
/// the first `m` leaves is the old tree itself, whose root the verifier already has.
fn subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    if m == 0 {
        return;
    }
    if m == leaves.len() {
        if !complete {
            out.push(root(leaves));
        }
        return;
    }
    // Here 1 <= m < n, so n >= 2 and the split is proper.
    let (left, right) = split(leaves);
    if m <= left.len() {
        subproof(m, left, complete, out);
        out.push(root(right));
    } else {
        subproof(m - left.len(), right, false, out);
        out.push(root(left));
    }
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The proof does not have the number of hashes the sizes call for.
    #[error("proof has {got} hashes, but these sizes call for exactly {expected}")]
    WrongProofLength {
        /// Number of hashes the sizes call for.
        expected: usize,
        /// Number of hashes given.
        got: usize,
    },
    /// The root recomputed from an inclusion proof is not the given root.
    #[error("the inclusion proof leads to a different root than the one given")]
    RootMismatch,
    /// The old root recomputed from a consistency proof is not the given old root.
    #[error("the consistency proof leads to a different old root than the one given")]
    OldRootMismatch,
    /// The new root recomputed from a consistency proof is not the given new root.
    #[error("the consistency proof leads to a different new root than the one given")]
    NewRootMismatch,
    /// The old tree is larger than the new one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    SizeOrder {
        /// The claimed old size.
        old_size: u64,
        /// The claimed new size.
        new_size: u64,
    },
}

/// Length of PATH(index, D[size]) per the recursive definition, computed on sizes alone.
/// Requires `index < size`.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let (mut m, mut n, mut len) = (index, size, 0usize);
    while n > 1 {
        let k = split_point_u64(n);
        if m < k {
            n = k;
        } else {
            m -= k;
            n -= k;
        }
        len += 1;
    }
    len
}

/// Length of PROOF(old_size, D[new_size]) per the recursive definition, computed on sizes alone.
/// Requires `0 < old_size < new_size`.
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    let (mut m, mut n, mut complete, mut len) = (old_size, new_size, true, 0usize);
    while m != n && m != 0 {
        let k = split_point_u64(n);
        if m <= k {
            n = k;
        } else {
            m -= k;
            n -= k;
            complete = false;
        }
        len += 1;
    }
    if m != 0 && !complete {
        len += 1;
    }
    len
}

/// RFC 9162 section 2.1.3.2 verification algorithm.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    let wrong_length = ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }
    let mut f = index;
    let mut s = size - 1;
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            // Skip the levels where this node is the rightmost one and has no sibling.
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// RFC 9162 section 2.1.4.2 verification algorithm. old_size == 0 is trivially consistent only with an empty proof; old_size == new_size requires equal roots and an empty proof.
///
/// With `old_size == 0` the old root must also be `empty_root()` (and, when `new_size == 0` too, the new
/// root), since any other value cannot be the root of an empty tree.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::SizeOrder { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                got: proof.len(),
            });
        }
        if old_size == 0 && *old_root != empty_root() {
            return Err(ProofError::OldRootMismatch);
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::NewRootMismatch);
        }
        return Ok(());
    }

    let expected = consistency_proof_len(old_size, new_size);
    let wrong_length = ProofError::WrongProofLength {
        expected,
        got: proof.len(),
    };
    if proof.len() != expected {
        return Err(wrong_length);
    }

    // When the old tree is a perfect subtree of the new one its root is not sent: it is the old root itself.
    let (first, rest) = if old_size.is_power_of_two() {
        (old_root, proof)
    } else {
        match proof.split_first() {
            Some(split) => split,
            None => return Err(wrong_length),
        }
    };

    let mut f = old_size - 1;
    let mut s = new_size - 1;
    // Climb past the levels where the old tree's last node is a right child already covered by `first`.
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut fr = *first;
    let mut sr = *first;
    for c in rest {
        if s == 0 {
            return Err(wrong_length);
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    if s != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Hash {
        assert_eq!(s.len(), 64);
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// Deterministic, distinct leaves: the hash of the index, so neighbouring leaves share no structure.
    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(&i.to_le_bytes())).collect()
    }

    /// A plain transcription of MTH over indices, independent of `split`, as an oracle for `root`.
    fn reference_root(leaves: &[Hash]) -> Hash {
        let n = leaves.len();
        if n == 0 {
            return Sha256::digest(b"").into();
        }
        if n == 1 {
            return leaves[0];
        }
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
    }

    fn flip(h: &Hash, byte: usize, bit: u8) -> Hash {
        let mut out = *h;
        out[byte] ^= 1 << bit;
        out
    }

    /// Which bits of proof element `e` to flip: both ends of the hash plus one position that moves with the
    /// case, so that across the matrix every byte and bit position gets exercised without 256 flips per element.
    fn flip_positions(e: usize, a: u64, b: u64) -> [(usize, u8); 3] {
        let spread = e as u64 * 13 + a * 7 + b;
        [
            (0, 0),
            (31, 7),
            ((spread % 32) as usize, (spread % 8) as u8),
        ]
    }

    // The certificate-transparency reference data: the eight entries and the published roots for sizes 1..=8.
    const RFC_ENTRIES: [&[u8]; 8] = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ];
    const RFC_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn rfc_leaves() -> Vec<Hash> {
        RFC_ENTRIES.iter().map(|e| leaf_hash(e)).collect()
    }

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(empty_root(), hex(EMPTY_ROOT));
        assert_eq!(root(&[]), hex(EMPTY_ROOT));
        assert_eq!(Frontier::new().root(), hex(EMPTY_ROOT));
    }

    #[test]
    fn leaf_and_node_hashes_use_rfc_prefixes() {
        assert_eq!(leaf_hash(b""), hex(RFC_ROOTS[0]));
        let a = leaf_hash(b"a");
        let b = leaf_hash(b"b");
        let mut pre = vec![1u8];
        pre.extend_from_slice(&a);
        pre.extend_from_slice(&b);
        let want: Hash = Sha256::digest(&pre).into();
        assert_eq!(node_hash(&a, &b), want);
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
    }

    #[test]
    fn rfc6962_known_roots() {
        let l = rfc_leaves();
        let mut frontier = Frontier::new();
        for (n, want) in RFC_ROOTS.iter().enumerate() {
            let size = n + 1;
            assert_eq!(root(&l[..size]), hex(want), "root of size {size}");
            frontier.push(l[n]);
            assert_eq!(frontier.root(), hex(want), "frontier root of size {size}");
            assert_eq!(frontier.size(), size as u64);
        }
    }

    #[test]
    fn rfc6962_known_inclusion_proofs() {
        let l = rfc_leaves();
        let cases: [(u64, u64, &[&str]); 5] = [
            (0, 1, &[]),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (index, size, want) in cases {
            let want: Vec<Hash> = want.iter().map(|h| hex(h)).collect();
            let got = inclusion_proof(&l, index, size).unwrap();
            assert_eq!(got, want, "PATH({index}, D[{size}])");
            let r = hex(RFC_ROOTS[size as usize - 1]);
            verify_inclusion(&l[index as usize], index, size, &want, &r).unwrap();
        }
    }

    #[test]
    fn rfc6962_known_consistency_proofs() {
        let l = rfc_leaves();
        let cases: [(u64, u64, &[&str]); 5] = [
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                2,
                8,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
        ];
        for (m, n, want) in cases {
            let want: Vec<Hash> = want.iter().map(|h| hex(h)).collect();
            let got = consistency_proof(&l, m, n).unwrap();
            assert_eq!(got, want, "PROOF({m}, D[{n}])");
            let old = hex(RFC_ROOTS[m as usize - 1]);
            let new = hex(RFC_ROOTS[n as usize - 1]);
            verify_consistency(m, n, &old, &new, &want).unwrap();
        }
    }

    #[test]
    fn frontier_matches_root_for_sizes_0_to_200() {
        let all = leaves(200);
        let mut frontier = Frontier::new();
        assert_eq!(frontier.root(), root(&[]));
        for n in 1..=200usize {
            frontier.push(all[n - 1]);
            assert_eq!(frontier.size(), n as u64);
            let want = reference_root(&all[..n]);
            assert_eq!(root(&all[..n]), want, "root() at size {n}");
            assert_eq!(frontier.root(), want, "Frontier::root() at size {n}");
            // The frontier holds one node per set bit of the size.
            assert_eq!(frontier.nodes.len(), n.count_ones() as usize);
        }
        // Equality is structural: two frontiers over the same leaves compare equal.
        let mut again = Frontier::new();
        for leaf in &all {
            again.push(*leaf);
        }
        assert_eq!(again, frontier);
    }

    #[test]
    fn generators_refuse_bad_arguments() {
        let l = leaves(8);
        assert_eq!(inclusion_proof(&l, 8, 8), None);
        assert_eq!(inclusion_proof(&l, 0, 0), None);
        assert_eq!(inclusion_proof(&l, 0, 9), None);
        assert_eq!(inclusion_proof(&l, u64::MAX, u64::MAX), None);
        assert_eq!(inclusion_proof(&l, 0, u64::MAX), None);
        assert_eq!(consistency_proof(&l, 5, 3), None);
        assert_eq!(consistency_proof(&l, 0, 9), None);
        assert_eq!(consistency_proof(&l, 9, 9), None);
        assert_eq!(consistency_proof(&l, 1, u64::MAX), None);
        assert_eq!(consistency_proof(&l, 0, 0), Some(vec![]));
        assert_eq!(consistency_proof(&l, 0, 8), Some(vec![]));
        assert_eq!(consistency_proof(&l, 8, 8), Some(vec![]));
        assert_eq!(consistency_proof(&l, 3, 3), Some(vec![]));
    }

    #[test]
    fn proof_lengths_match_generated_proofs() {
        let l = leaves(64);
        for n in 1..=64u64 {
            for i in 0..n {
                let p = inclusion_proof(&l, i, n).unwrap();
                assert_eq!(p.len(), inclusion_proof_len(i, n), "PATH({i}, {n})");
            }
            for m in 1..n {
                let p = consistency_proof(&l, m, n).unwrap();
                assert_eq!(p.len(), consistency_proof_len(m, n), "PROOF({m}, {n})");
            }
        }
    }

    #[test]
    fn every_inclusion_proof_verifies_and_every_mutation_is_rejected() {
        let all = leaves(65);
        let roots: Vec<Hash> = (0..=65).map(|n| root(&all[..n])).collect();
        let other = leaf_hash(b"not in the tree");
        let mut checked = 0u64;
        for n in 1..=64u64 {
            let r = roots[n as usize];
            for i in 0..n {
                let leaf = all[i as usize];
                let proof = inclusion_proof(&all, i, n).unwrap();
                assert_eq!(verify_inclusion(&leaf, i, n, &proof, &r), Ok(()), "{i}/{n}");

                let reject = |leaf: &Hash, i: u64, n: u64, proof: &[Hash], r: &Hash, what: &str| {
                    assert!(
                        verify_inclusion(leaf, i, n, proof, r).is_err(),
                        "accepted {what} for leaf {i} of {n}"
                    );
                };

                for (e, _) in proof.iter().enumerate() {
                    for (byte, bit) in flip_positions(e, i, n) {
                        let mut bad = proof.clone();
                        bad[e] = flip(&bad[e], byte, bit);
                        reject(&leaf, i, n, &bad, &r, "a flipped bit");
                    }
                    let mut dropped = proof.clone();
                    dropped.remove(e);
                    reject(&leaf, i, n, &dropped, &r, "a dropped element");
                }
                for extra in [other, leaf, r, [0u8; 32]] {
                    let mut appended = proof.clone();
                    appended.push(extra);
                    reject(&leaf, i, n, &appended, &r, "an appended element");
                    let mut prepended = vec![extra];
                    prepended.extend_from_slice(&proof);
                    reject(&leaf, i, n, &prepended, &r, "a prepended element");
                }
                for e in 1..proof.len() {
                    let mut swapped = proof.clone();
                    swapped.swap(e - 1, e);
                    if swapped != proof {
                        reject(&leaf, i, n, &swapped, &r, "swapped elements");
                    }
                }
                if i > 0 {
                    reject(&leaf, i - 1, n, &proof, &r, "index - 1");
                }
                reject(&leaf, i + 1, n, &proof, &r, "index + 1");
                // A wrong size is paired with the real root of that size: with the original root some sizes
                // share the path's shape, and only the signed checkpoint ties a root to its size.
                let (up, down) = (&roots[n as usize + 1], &roots[n as usize - 1]);
                reject(&leaf, i, n + 1, &proof, up, "size + 1");
                reject(&leaf, i, n - 1, &proof, down, "size - 1");
                reject(&leaf, i, u64::MAX, &proof, &r, "size u64::MAX");
                reject(&other, i, n, &proof, &r, "a wrong leaf");
                if n > 1 {
                    let neighbour = all[((i + 1) % n) as usize];
                    reject(&neighbour, i, n, &proof, &r, "a neighbouring leaf");
                }
                reject(
                    &leaf,
                    i,
                    n,
                    &proof,
                    &roots[n as usize - 1],
                    "the previous root",
                );
                reject(&leaf, i, n, &proof, &roots[n as usize + 1], "the next root");
                reject(&leaf, i, n, &proof, &flip(&r, 31, 0), "a flipped root");
                checked += 1;
            }
        }
        assert_eq!(checked, 64 * 65 / 2);
    }

    #[test]
    fn every_consistency_proof_verifies_and_every_mutation_is_rejected() {
        let all = leaves(65);
        let roots: Vec<Hash> = (0..=65).map(|n| root(&all[..n])).collect();
        let other = leaf_hash(b"not in the tree");
        for n in 1..=64u64 {
            for m in 1..=n {
                let (old, new) = (roots[m as usize], roots[n as usize]);
                let proof = consistency_proof(&all, m, n).unwrap();
                assert_eq!(
                    verify_consistency(m, n, &old, &new, &proof),
                    Ok(()),
                    "{m} -> {n}"
                );
                let reject =
                    |m: u64, n: u64, old: &Hash, new: &Hash, proof: &[Hash], what: &str| {
                        assert!(
                            verify_consistency(m, n, old, new, proof).is_err(),
                            "accepted {what} for {m} -> {n}"
                        );
                    };

                for (e, _) in proof.iter().enumerate() {
                    for (byte, bit) in flip_positions(e, m, n) {
                        let mut bad = proof.clone();
                        bad[e] = flip(&bad[e], byte, bit);
                        reject(m, n, &old, &new, &bad, "a flipped bit");
                    }
                    let mut dropped = proof.clone();
                    dropped.remove(e);
                    reject(m, n, &old, &new, &dropped, "a dropped element");
                }
                for extra in [other, old, new, [0u8; 32]] {
                    let mut appended = proof.clone();
                    appended.push(extra);
                    reject(m, n, &old, &new, &appended, "an appended element");
                    let mut prepended = vec![extra];
                    prepended.extend_from_slice(&proof);
                    reject(m, n, &old, &new, &prepended, "a prepended element");
                }
                for e in 1..proof.len() {
                    let mut swapped = proof.clone();
                    swapped.swap(e - 1, e);
                    if swapped != proof {
                        reject(m, n, &old, &new, &swapped, "swapped elements");
                    }
                }
                // Wrong sizes, each paired with the roots that match it so only the proof can give it away.
                // 0 -> 1 is trivially consistent, so (m - 1, n) with the empty root is a true claim there.
                if m > 1 || !proof.is_empty() {
                    reject(
                        m - 1,
                        n,
                        &roots[m as usize - 1],
                        &new,
                        &proof,
                        "old size - 1",
                    );
                }
                if m < n {
                    reject(
                        m + 1,
                        n,
                        &roots[m as usize + 1],
                        &new,
                        &proof,
                        "old size + 1",
                    );
                    reject(
                        m,
                        n - 1,
                        &old,
                        &roots[n as usize - 1],
                        &proof,
                        "new size - 1",
                    );
                }
                reject(
                    m,
                    n + 1,
                    &old,
                    &roots[n as usize + 1],
                    &proof,
                    "new size + 1",
                );
                reject(n, m.saturating_sub(1), &new, &old, &proof, "reversed sizes");
                if m < n {
                    reject(n, m, &new, &old, &proof, "swapped sizes");
                    // Equal roots for unequal sizes would mean an empty proof could claim anything.
                    reject(m, n, &new, &new, &proof, "the new root as old root");
                    reject(m, n, &old, &old, &proof, "the old root as new root");
                }
                for bad_old in [flip(&old, 0, 0), other, roots[m as usize - 1], empty_root()] {
                    reject(m, n, &bad_old, &new, &proof, "a wrong old root");
                }
                for bad_new in [
                    flip(&new, 31, 7),
                    other,
                    roots[n as usize - 1],
                    empty_root(),
                ] {
                    if bad_new != new {
                        reject(m, n, &old, &bad_new, &proof, "a wrong new root");
                    }
                }
            }
        }
    }

    #[test]
    fn degenerate_consistency_cases() {
        let all = leaves(8);
        let r4 = root(&all[..4]);
        let r5 = root(&all[..5]);
        let r8 = root(&all);
        let e = empty_root();
        assert_eq!(verify_consistency(4, 4, &r4, &r4, &[]), Ok(()));
        assert_eq!(
            verify_consistency(4, 4, &r4, &r5, &[]),
            Err(ProofError::NewRootMismatch)
        );
        assert_eq!(
            verify_consistency(4, 4, &r4, &r4, &[r4]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                got: 1
            })
        );
        assert_eq!(verify_consistency(0, 8, &e, &r8, &[]), Ok(()));
        assert_eq!(verify_consistency(0, 0, &e, &e, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 0, &e, &r8, &[]),
            Err(ProofError::NewRootMismatch)
        );
        assert_eq!(
            verify_consistency(0, 8, &r4, &r8, &[]),
            Err(ProofError::OldRootMismatch)
        );
        assert!(verify_consistency(0, 8, &e, &r8, &[r8]).is_err());
        assert_eq!(
            verify_consistency(8, 4, &r8, &r4, &[]),
            Err(ProofError::SizeOrder {
                old_size: 8,
                new_size: 4
            })
        );
        let p = consistency_proof(&all, 4, 8).unwrap();
        assert_eq!(
            verify_consistency(4, 8, &r4, &r8, &[]),
            Err(ProofError::WrongProofLength {
                expected: p.len(),
                got: 0
            })
        );
    }

    #[test]
    fn inclusion_errors_are_specific() {
        let all = leaves(8);
        let r8 = root(&all);
        let p = inclusion_proof(&all, 3, 8).unwrap();
        assert_eq!(
            verify_inclusion(&all[3], 8, 8, &p, &r8),
            Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
        );
        assert_eq!(
            verify_inclusion(&all[3], 0, 0, &[], &empty_root()),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(&all[3], 3, 8, &p[..2], &r8),
            Err(ProofError::WrongProofLength {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(
            verify_inclusion(&all[4], 3, 8, &p, &r8),
            Err(ProofError::RootMismatch)
        );
        // A one-leaf tree: the leaf is the root and the proof is empty.
        assert_eq!(verify_inclusion(&all[0], 0, 1, &[], &all[0]), Ok(()));
        assert!(verify_inclusion(&all[0], 0, 1, &[all[1]], &all[0]).is_err());
    }

    /// Roots of trees whose leaves are all the same hash: the perfect subtree of height h has root
    /// `perfect[h]`, which lets real proofs be built for sizes near 2^63 without the leaves.
    struct Uniform {
        perfect: Vec<Hash>,
    }

    impl Uniform {
        fn new(leaf: Hash) -> Self {
            let mut perfect = vec![leaf];
            for h in 0..64 {
                let below = perfect[h];
                perfect.push(node_hash(&below, &below));
            }
            Self { perfect }
        }

        fn root(&self, n: u64) -> Hash {
            if n == 0 {
                return empty_root();
            }
            if n.is_power_of_two() {
                return self.perfect[n.trailing_zeros() as usize];
            }
            let k = split_point_u64(n);
            node_hash(&self.root(k), &self.root(n - k))
        }

        fn path(&self, m: u64, n: u64, out: &mut Vec<Hash>) {
            if n < 2 {
                return;
            }
            let k = split_point_u64(n);
            if m < k {
                self.path(m, k, out);
                out.push(self.root(n - k));
            } else {
                self.path(m - k, n - k, out);
                out.push(self.root(k));
            }
        }

        fn subproof(&self, m: u64, n: u64, complete: bool, out: &mut Vec<Hash>) {
            if m == n {
                if !complete {
                    out.push(self.root(n));
                }
                return;
            }
            let k = split_point_u64(n);
            if m <= k {
                self.subproof(m, k, complete, out);
                out.push(self.root(n - k));
            } else {
                self.subproof(m - k, n - k, false, out);
                out.push(self.root(k));
            }
        }
    }

    #[test]
    fn huge_trees_verify_without_overflow() {
        let u = Uniform::new(leaf_hash(b"same"));
        // The uniform oracle agrees with the real thing where both can be computed.
        let small: Vec<Hash> = (0..37).map(|_| leaf_hash(b"same")).collect();
        for n in 0..=37u64 {
            assert_eq!(u.root(n), root(&small[..n as usize]));
        }
        let big = 1u64 << 63;
        let sizes = [big - 1, big, big + 1, big + 12345, u64::MAX - 1, u64::MAX];
        for &n in &sizes {
            let r = u.root(n);
            for i in [0, 1, n / 2, n - 2, n - 1] {
                let mut p = Vec::new();
                u.path(i, n, &mut p);
                assert_eq!(p.len(), inclusion_proof_len(i, n));
                assert_eq!(
                    verify_inclusion(&u.perfect[0], i, n, &p, &r),
                    Ok(()),
                    "{i}/{n}"
                );
                let mut longer = p.clone();
                longer.push(r);
                assert!(verify_inclusion(&u.perfect[0], i, n, &longer, &r).is_err());
                assert!(verify_inclusion(&u.perfect[0], i, n, &p[1..], &r).is_err());
            }
            for m in [1, 2, 3, n / 2, n - 1, n] {
                let mut p = Vec::new();
                if m != n {
                    u.subproof(m, n, true, &mut p);
                    assert_eq!(p.len(), consistency_proof_len(m, n));
                }
                let old = u.root(m);
                assert_eq!(verify_consistency(m, n, &old, &r, &p), Ok(()), "{m}->{n}");
                let mut longer = p.clone();
                longer.push(r);
                assert!(verify_consistency(m, n, &old, &r, &longer).is_err());
            }
        }
    }

    #[test]
    fn verifiers_never_panic_on_arbitrary_input() {
        let junk: Vec<Hash> = (0..70u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let sizes = [
            0,
            1,
            2,
            3,
            7,
            8,
            9,
            63,
            64,
            65,
            (1 << 32) + 1,
            (1 << 63) - 1,
            1 << 63,
            (1 << 63) + 1,
            u64::MAX - 1,
            u64::MAX,
        ];
        for &a in &sizes {
            for &b in &sizes {
                for len in [0usize, 1, 2, 5, 31, 32, 33, 63, 64, 65, 70] {
                    let p = &junk[..len];
                    assert!(verify_inclusion(&junk[0], a, b, p, &junk[1]).is_err());
                    let r = verify_consistency(a, b, &junk[0], &junk[1], p);
                    assert!(r.is_err(), "{a} {b} {len}: {r:?}");
                }
            }
        }
    }

    #[test]
    fn errors_read_well() {
        assert_eq!(
            ProofError::WrongProofLength {
                expected: 3,
                got: 4
            }
            .to_string(),
            "proof has 4 hashes, but these sizes call for exactly 3"
        );
        assert_eq!(
            ProofError::IndexOutOfRange { index: 9, size: 8 }.to_string(),
            "leaf index 9 is out of range for a tree of size 8"
        );
    }
}
