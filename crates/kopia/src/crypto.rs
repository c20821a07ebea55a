//! Kopia's keys and ciphers (kopia's repo/format, repo/hashing and repo/encryption): the password's
//! scrypt key that opens `kopia.repository`, the keyed BLAKE2b content hash, and AES-256-GCM with
//! a per-content key (`AES256-GCM-HMAC-SHA256`).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

use crate::error::KopiaError;

/// Bytes of a content hash (`BLAKE2B-256-128`: 256-bit digest, truncated to 128 bits).
pub const HASH_BYTES: usize = 16;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// The only hash, encryption, key derivation and splitter names this crate implements: kopia's
/// defaults, which Velero never changes.
pub const HASH_ALGORITHM: &str = "BLAKE2B-256-128";
pub const ENCRYPTION_ALGORITHM: &str = "AES256-GCM-HMAC-SHA256";
pub const KEY_DERIVATION: &str = "scrypt-65536-8-1";
pub const FORMAT_ENCRYPTION: &str = "AES256_GCM";

pub type ContentHash = [u8; HASH_BYTES];

/// HKDF-SHA256 (RFC 5869), as Go's `crypto/hkdf.Key`.
pub(crate) fn hkdf(ikm: &[u8], salt: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    // 32 bytes is always a valid HKDF-SHA256 output length.
    let _ = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), ikm).expand(info, &mut out);
    out
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    hmac::Mac::update(&mut mac, message);
    hmac::Mac::finalize(mac).into_bytes().into()
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], KopiaError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| KopiaError::Random(e.to_string()))?;
    Ok(bytes)
}

/// `scrypt-65536-8-1`: the key that opens the format blob, from the password and the repository's
/// unique ID. About 0.3 s and 64 MiB, by design.
pub(crate) fn format_key(password: &str, unique_id: &[u8]) -> Result<[u8; 32], KopiaError> {
    let params = scrypt::Params::new(16, 8, 1)
        .map_err(|e| KopiaError::Unsupported(format!("scrypt parameters: {e}")))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), unique_id, &params, &mut key)
        .map_err(|e| KopiaError::Unsupported(format!("scrypt: {e}")))?;
    Ok(key)
}

/// AES-256-GCM as kopia uses it: a random nonce, then the ciphertext and its tag. AWS-LC's
/// implementation (already in the build for TLS): its fused AES-GCM is what keeps sealing every
/// byte of a volume no slower than kopia's Go assembly.
fn gcm_key(key: &[u8; 32]) -> Result<LessSafeKey, KopiaError> {
    UnboundKey::new(&AES_256_GCM, key)
        .map(LessSafeKey::new)
        .map_err(|_| KopiaError::Unsupported("AES-256-GCM refused a 32-byte key".into()))
}

/// Appends `nonce ‖ AES-256-GCM(plain) ‖ tag` to `out`, sealed where it lies; how many bytes.
fn seal_into(
    key: &[u8; 32],
    aad: &[u8],
    plain: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, KopiaError> {
    let nonce: [u8; NONCE_BYTES] = random()?;
    let key = gcm_key(key)?;
    let start = out.len();
    out.reserve(NONCE_BYTES + plain.len() + TAG_BYTES);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let sealed = key.seal_in_place_separate_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut out[start + NONCE_BYTES..],
    );
    let Ok(tag) = sealed else {
        // A pack keeps nothing of a content that could not be sealed.
        out.truncate(start);
        return Err(KopiaError::Unsupported("AES-GCM refused to encrypt".into()));
    };
    out.extend_from_slice(tag.as_ref());
    Ok(out.len() - start)
}

fn seal(key: &[u8; 32], aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, KopiaError> {
    let mut out = Vec::new();
    seal_into(key, aad, plain, &mut out)?;
    Ok(out)
}

/// `None` when the bytes do not authenticate (wrong key, or damaged).
fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_BYTES + TAG_BYTES {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_BYTES);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut body = body.to_vec();
    let plain_len = gcm_key(key)
        .ok()?
        .open_in_place(nonce, Aad::from(aad), &mut body)
        .ok()?
        .len();
    body.truncate(plain_len);
    Some(body)
}

/// The format blob's cipher: `AES256_GCM` with keys derived from the password's scrypt key.
pub(crate) struct FormatCipher {
    aes_key: [u8; 32],
    auth_data: [u8; 32],
}

impl FormatCipher {
    pub(crate) fn new(format_key: &[u8; 32], unique_id: &[u8]) -> Self {
        FormatCipher {
            aes_key: hkdf(format_key, unique_id, b"AES"),
            auth_data: hkdf(format_key, unique_id, b"CHECKSUM"),
        }
    }

    pub(crate) fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, KopiaError> {
        seal(&self.aes_key, &self.auth_data, plain)
    }

    pub(crate) fn decrypt(&self, sealed: &[u8]) -> Option<Vec<u8>> {
        open(&self.aes_key, &self.auth_data, sealed)
    }
}

/// The content hash and cipher of an open repository.
#[derive(Clone)]
pub struct ContentCipher {
    hmac_secret: [u8; 32],
    content_key_secret: [u8; 32],
}

impl std::fmt::Debug for ContentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContentCipher { .. }")
    }
}

impl ContentCipher {
    pub(crate) fn new(hmac_secret: [u8; 32], master_key: [u8; 32]) -> Self {
        ContentCipher {
            hmac_secret,
            // Salt and info the other way round from the format keys: kopia's encryption.deriveKey.
            content_key_secret: hkdf(&master_key, b"encryption", b""),
        }
    }

    /// `BLAKE2B-256-128`: keyed BLAKE2b with a 32-byte digest, truncated to 16 bytes.
    pub fn hash(&self, data: &[u8]) -> ContentHash {
        let full = blake2b_simd::Params::new()
            .hash_length(32)
            .key(&self.hmac_secret)
            .hash(data);
        let mut hash = [0u8; HASH_BYTES];
        hash.copy_from_slice(&full.as_bytes()[..HASH_BYTES]);
        hash
    }

    fn key_for(&self, iv: &[u8]) -> [u8; 32] {
        hmac_sha256(&self.content_key_secret, iv)
    }

    /// A content or blob sealed under the key its IV (its hash) selects; the IV is also the
    /// authenticated data.
    pub fn encrypt(&self, iv: &[u8], plain: &[u8]) -> Result<Vec<u8>, KopiaError> {
        seal(&self.key_for(iv), iv, plain)
    }

    /// [`encrypt`](Self::encrypt), appended to `out` (a pack being filled) and sealed where it
    /// lies: no copy of the content but the one into the pack. How many bytes were appended.
    pub fn encrypt_into(
        &self,
        iv: &[u8],
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<usize, KopiaError> {
        seal_into(&self.key_for(iv), iv, plain, out)
    }

    pub fn decrypt(&self, iv: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open(&self.key_for(iv), iv, sealed)
    }

    /// AES-256-GCM under a derived key with fixed authenticated data (`kopia.maintenance`).
    pub(crate) fn seal_with(
        key: &[u8; 32],
        aad: &[u8],
        plain: &[u8],
    ) -> Result<Vec<u8>, KopiaError> {
        seal(key, aad, plain)
    }

    pub(crate) fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        open(key, aad, sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn arr(s: &str) -> [u8; 32] {
        unhex(s).try_into().unwrap()
    }

    /// Keys and hashes of a repository kopia 0.22.3 created with the password `pw`.
    #[test]
    fn keys_and_hashes_match_a_repository_kopia_wrote() {
        let unique = unhex("f256ad0a545d6db94d25ae6aedb1ac9ea181cc73e05d5ccf96bc0c1161319430");
        let key = format_key("pw", &unique).unwrap();
        assert_eq!(
            key,
            arr("7b7013d2f3c1e86e963a51e5d80dbccd732568310a3185e5046f459306a65db2")
        );
        let format = FormatCipher::new(&key, &unique);
        assert_eq!(
            format.aes_key,
            arr("8a394c518dd761cd4561830fbce97fafc5d2893e8f1477da2fe4393cbeed1746")
        );
        assert_eq!(
            format.auth_data,
            arr("4477a9cee31ba501c14f54fd0289593702e42fb87573accd887153f095dd8f5a")
        );
        let cipher = ContentCipher::new(
            arr("07ecdc35de2e5bf5758c43582e231de737dc6b03962c92e101cfe731dd4c7d11"),
            arr("a87b11ea11b42413c1ee9556c378e7adaa565a3a1c6f7d3aecf795185f4acdda"),
        );
        assert_eq!(
            cipher.content_key_secret,
            arr("b28997e11912135ceeedf8369ba531c53990a87b1c26c00c749fadc4632662c6")
        );
        assert_eq!(
            cipher.hash(b"").to_vec(),
            unhex("c91d5433bc9b51fa68df6fccc9f0dd02")
        );
        let hello = cipher.hash(b"hello world\n");
        assert_eq!(hello.to_vec(), unhex("a17cf60ae435538d08af78074db9cd2b"));
        assert_eq!(
            cipher.key_for(&hello),
            arr("fb1f2954daf625eb82ccec4be8203a9900a845ec9b397eaaf00c4747f8a8fc43")
        );
        let sealed = unhex(
            "4505c97681f4ad5d8eaa941f9339355fb55cbd1512e7b99eff907c61113d5cc6a0a1a825dafea1ba",
        );
        assert_eq!(cipher.decrypt(&hello, &sealed).unwrap(), b"hello world\n");
        // Another IV selects another key: the content does not open.
        assert!(cipher.decrypt(&cipher.hash(b"x"), &sealed).is_none());
        let again = cipher.encrypt(&hello, b"hello world\n").unwrap();
        assert_eq!(cipher.decrypt(&hello, &again).unwrap(), b"hello world\n");
    }
}
