//! Optional encryption at rest: a ring of XChaCha20-Poly1305 keys read from a key file, and the
//! sealing of one piece of data (an open-segment row body, a sealed block, a footer section, a
//! reject text, a consent record) as `nonce (24) ‖ ciphertext ‖ tag (16)`, bound by its associated data to the
//! place it is stored at. The key with the highest id is the active one (it encrypts everything
//! new); every key of the ring decrypts. Byte layouts: docs/format.md, "Encryption".
//!
//! It owns the keys and never lets them out: no accessor returns key bytes, the `Debug` output
//! lists key ids only, and no error or log line carries key material.

pub mod keyfile;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Key, Tag, XChaCha20Poly1305, XNonce};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroize;

/// Bytes of a nonce (XChaCha20's extended nonce), stored before every ciphertext.
pub const NONCE_LEN: usize = 24;
/// Bytes of the Poly1305 tag, stored after every ciphertext.
pub const TAG_LEN: usize = 16;
/// Bytes sealing adds to a plaintext.
pub const OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// First 8 bytes of every associated-data string (versions the binding).
pub const AAD_TAG: [u8; 8] = *b"PLOGAAD1";

/// What a piece of sealed data is, the byte after [`AAD_TAG`] in its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Purpose {
    /// An open-segment row body; the index is the file offset of the row header.
    Row = 1,
    /// A sealed segment's block; the index is the block number.
    Block = 2,
    /// A sealed segment's footer section; the index is the section kind.
    Section = 3,
    /// A reject's text in the registry; the context is the reject's RocksDB key.
    RejectText = 4,
    /// A consent record (its JSON: number and evidence) in the registry; the context is the
    /// record's RocksDB key.
    ConsentRecord = 5,
    /// A journal frame's rows; the context is the frame's LSN (u64, little-endian).
    Journal = 6,
}

/// Why sealed data could not be opened (or data sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The data was sealed with a key the ring does not hold.
    MissingKey(u32),
    /// The tag does not verify: a wrong key, or the bytes or their place were changed.
    Auth,
    /// Shorter than a nonce and a tag.
    Short,
    /// The operating system gave no random bytes for a nonce.
    Random(String),
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::MissingKey(id) => write!(f, "encrypted with key {id}, which the key file does not hold"),
            CryptoError::Auth => {
                f.write_str("decryption failed: wrong key, or the ciphertext or its place was changed")
            }
            CryptoError::Short => f.write_str("encrypted data shorter than its nonce and tag"),
            CryptoError::Random(e) => write!(f, "no random bytes for a nonce: {e}"),
        }
    }
}

/// The keys of a key file.
pub struct KeyRing {
    keys: BTreeMap<u32, XChaCha20Poly1305>,
    active: u32,
    source: PathBuf,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("source", &self.source)
            .field("ids", &self.ids())
            .field("active", &self.active)
            .finish()
    }
}

impl KeyRing {
    /// Reads the key file at `path` (refused when group or others may read it).
    pub fn load(path: &Path) -> crate::Result<Self> {
        let keys = keyfile::read(path)?;
        Self::from_keys(keys, path)
    }

    /// A ring of the given keys; `source` names where they came from in messages. Fails only
    /// on an empty map.
    pub fn from_keys(mut keys: BTreeMap<u32, [u8; keyfile::KEY_LEN]>, source: &Path) -> crate::Result<Self> {
        let Some(&active) = keys.keys().next_back() else {
            return Err(crate::Error::KeyFile { path: source.to_owned(), line: 0, detail: "holds no key".into() });
        };
        let ring = keys.iter().map(|(&id, k)| (id, XChaCha20Poly1305::new(Key::from_slice(k)))).collect();
        for k in keys.values_mut() {
            k.zeroize();
        }
        Ok(Self { keys: ring, active, source: source.to_owned() })
    }

    /// The id of the key that encrypts new data (the highest).
    pub fn active_id(&self) -> u32 {
        self.active
    }

    /// Every key id, ascending.
    pub fn ids(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Whether the ring holds key `id`.
    pub fn has(&self, id: u32) -> bool {
        self.keys.contains_key(&id)
    }

    /// The key file the ring was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Appends `nonce ‖ ciphertext of plain ‖ tag` to `out`, sealed with key `id` and bound to
    /// `aad`.
    pub fn seal(&self, id: u32, aad: &[u8], plain: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        let cipher = self.keys.get(&id).ok_or(CryptoError::MissingKey(id))?;
        let start = out.len();
        out.reserve(OVERHEAD + plain.len());
        out.resize(start + NONCE_LEN, 0);
        fill_nonce(&mut out[start..start + NONCE_LEN])?;
        out.extend_from_slice(plain);
        let (nonce, body) = out[start..].split_at_mut(NONCE_LEN);
        let tag = match cipher.encrypt_in_place_detached(XNonce::from_slice(nonce), aad, body) {
            Ok(t) => t,
            Err(_) => {
                // Only a plaintext above XChaCha20's 256 GiB limit fails: never written.
                out.truncate(start);
                return Err(CryptoError::Auth);
            }
        };
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// The plaintext of `sealed` (`nonce ‖ ciphertext ‖ tag`), sealed with key `id` and bound
    /// to `aad`.
    pub fn open(&self, id: u32, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let cipher = self.keys.get(&id).ok_or(CryptoError::MissingKey(id))?;
        if sealed.len() < OVERHEAD {
            return Err(CryptoError::Short);
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plain = body.to_vec();
        cipher
            .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, &mut plain, Tag::from_slice(tag))
            .map_err(|_| CryptoError::Auth)?;
        Ok(plain)
    }
}

/// Associated data: [`AAD_TAG`] ‖ purpose ‖ `context` (what identifies the data's place).
pub fn aad(purpose: Purpose, context: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(AAD_TAG.len() + 1 + context.len());
    a.extend_from_slice(&AAD_TAG);
    a.push(purpose as u8);
    a.extend_from_slice(context);
    a
}

/// The cipher of one segment: the ring, the key the segment is encrypted with (from its
/// header) and the segment's identity, which every associated-data string of it carries.
#[derive(Debug, Clone)]
pub struct SegmentCipher {
    keys: Arc<KeyRing>,
    /// The key id of the segment's header.
    pub key_id: u32,
    /// shard u32 ‖ bucket start i64 ‖ generation u32, little-endian.
    identity: [u8; 16],
}

impl SegmentCipher {
    /// The cipher of the segment `(shard, bucket_start_ms, gen)` encrypted with key `key_id`.
    pub fn new(keys: Arc<KeyRing>, key_id: u32, shard: u32, bucket_start_ms: i64, gen: u32) -> Self {
        let mut identity = [0u8; 16];
        identity[0..4].copy_from_slice(&shard.to_le_bytes());
        identity[4..12].copy_from_slice(&bucket_start_ms.to_le_bytes());
        identity[12..16].copy_from_slice(&gen.to_le_bytes());
        Self { keys, key_id, identity }
    }

    /// Associated data of the segment's item `index` of `purpose`: [`AAD_TAG`] ‖ purpose ‖
    /// shard ‖ bucket start ‖ generation ‖ index u64 (33 bytes).
    pub fn aad(&self, purpose: Purpose, index: u64) -> [u8; 33] {
        let mut a = [0u8; 33];
        a[0..8].copy_from_slice(&AAD_TAG);
        a[8] = purpose as u8;
        a[9..25].copy_from_slice(&self.identity);
        a[25..33].copy_from_slice(&index.to_le_bytes());
        a
    }

    /// Seals `plain` as item `index` of `purpose`, appending to `out`.
    pub fn seal(&self, purpose: Purpose, index: u64, plain: &[u8], out: &mut Vec<u8>) -> Result<(), CryptoError> {
        self.keys.seal(self.key_id, &self.aad(purpose, index), plain, out)
    }

    /// Opens item `index` of `purpose`.
    pub fn open(&self, purpose: Purpose, index: u64, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.keys.open(self.key_id, &self.aad(purpose, index), sealed)
    }

    /// Whether the ring holds the segment's key.
    pub fn has_key(&self) -> bool {
        self.keys.has(self.key_id)
    }
}

/// Bytes of random numbers a thread draws from the operating system at once for its nonces.
const NONCE_POOL_BYTES: usize = 4096;

thread_local! {
    /// Random bytes from `getrandom` not yet used, and how many of them were: one system call
    /// serves 170 nonces, and every byte is used once.
    static NONCE_POOL: RefCell<(Box<[u8; NONCE_POOL_BYTES]>, usize)> =
        RefCell::new((Box::new([0u8; NONCE_POOL_BYTES]), NONCE_POOL_BYTES));
}

/// Fills `nonce` with fresh random bytes from the operating system (`getrandom`).
pub fn fill_nonce(nonce: &mut [u8]) -> Result<(), CryptoError> {
    NONCE_POOL.with(|p| {
        let mut p = p.try_borrow_mut().map_err(|e| CryptoError::Random(e.to_string()))?;
        let (pool, used) = &mut *p;
        if *used + nonce.len() > NONCE_POOL_BYTES {
            getrandom::getrandom(&mut pool[..]).map_err(|e| CryptoError::Random(e.to_string()))?;
            *used = 0;
        }
        nonce.copy_from_slice(&pool[*used..*used + nonce.len()]);
        // Never hand the same bytes out twice.
        pool[*used..*used + nonce.len()].zeroize();
        *used += nonce.len();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ring(ids: &[u32]) -> Arc<KeyRing> {
        let keys = ids.iter().map(|&i| (i, [i as u8; 32])).collect();
        Arc::new(KeyRing::from_keys(keys, Path::new("keys")).unwrap())
    }

    #[test]
    fn seal_open_round_trip_and_every_change_is_refused() {
        let r = ring(&[1, 2]);
        assert_eq!(r.active_id(), 2);
        let mut out = vec![9u8];
        r.seal(2, b"place", b"hello text", &mut out).unwrap();
        assert_eq!(out.len(), 1 + OVERHEAD + 10);
        let sealed = &out[1..];
        assert_eq!(r.open(2, b"place", sealed).unwrap(), b"hello text");
        assert_eq!(r.open(2, b"other", sealed), Err(CryptoError::Auth));
        assert_eq!(r.open(1, b"place", sealed), Err(CryptoError::Auth));
        assert_eq!(r.open(3, b"place", sealed), Err(CryptoError::MissingKey(3)));
        assert_eq!(r.open(2, b"place", &sealed[..OVERHEAD - 1]), Err(CryptoError::Short));
        for i in 0..sealed.len() {
            let mut s = sealed.to_vec();
            s[i] ^= 1;
            assert_eq!(r.open(2, b"place", &s), Err(CryptoError::Auth), "flip at {i}");
        }
        assert!(!format!("{r:?}").contains("[2, 2"), "{r:?}");
    }

    #[test]
    fn nonces_differ() {
        let r = ring(&[1]);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let mut out = Vec::new();
            r.seal(1, b"", b"x", &mut out).unwrap();
            assert!(seen.insert(out[..NONCE_LEN].to_vec()));
        }
    }

    #[test]
    fn segment_aad_binds_identity_purpose_and_index() {
        let r = ring(&[5]);
        let a = SegmentCipher::new(r.clone(), 5, 1, 1000, 2);
        let b = SegmentCipher::new(r, 5, 1, 1000, 3);
        let mut out = Vec::new();
        a.seal(Purpose::Block, 7, b"block", &mut out).unwrap();
        assert_eq!(a.open(Purpose::Block, 7, &out).unwrap(), b"block");
        assert!(a.open(Purpose::Block, 8, &out).is_err());
        assert!(a.open(Purpose::Section, 7, &out).is_err());
        assert!(b.open(Purpose::Block, 7, &out).is_err());
    }
}
