//! Ed25519 signing keys of case manifests: generation, the key file formats
//! and fingerprints.
//!
//! - Private key: PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`), the format
//!   `openssl genpkey -algorithm ed25519` writes; the file is created with
//!   mode 0600 and never overwritten.
//! - Public key: SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`),
//!   what `openssl pkey -pubout` writes. A file holding the 64 hex digits of
//!   the raw 32-byte key is accepted too.
//! - Fingerprint: the sha256 of the raw 32-byte public key, in hex.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};

/// A private signing key. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public().fingerprint())
    }
}

/// A public key that checks manifest signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> anyhow::Result<Self> {
        use rand::TryRngCore;
        let mut seed = [0u8; 32];
        rand::rngs::OsRng
            .try_fill_bytes(&mut seed)
            .map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
        Ok(SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// Read a PKCS#8 PEM private key file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        ed25519_dalek::SigningKey::from_pkcs8_pem(&text)
            .map(SigningKey)
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: not an Ed25519 PKCS#8 PEM private key ({e}); create one with `irhost keygen`",
                    path.display()
                )
            })
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }

    /// Write `PREFIX.key` (0600, refusing to overwrite) and `PREFIX.pub`.
    pub fn write_pair(&self, prefix: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        let private = with_suffix(prefix, "key");
        let public = with_suffix(prefix, "pub");
        for path in [&private, &public] {
            if path.exists() {
                anyhow::bail!("{}: exists; refusing to overwrite a key", path.display());
            }
        }
        let pem = self
            .0
            .to_pkcs8_pem(Default::default())
            .map_err(|e| anyhow::anyhow!("encoding the private key: {e}"))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(&private)
            .map_err(|e| anyhow::anyhow!("{}: {e}", private.display()))?;
        file.write_all(pem.as_bytes())?;
        file.sync_all()?;
        let pub_pem = self.public().to_pem()?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&public)
            .map_err(|e| anyhow::anyhow!("{}: {e}", public.display()))?;
        file.write_all(pub_pem.as_bytes())?;
        file.sync_all()?;
        Ok((private, public))
    }
}

impl PublicKey {
    /// Read a public key file: SPKI PEM, or 64 hex digits.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        if text.contains("PRIVATE KEY") {
            anyhow::bail!(
                "{}: this is a private key; give the public key (.pub)",
                path.display()
            );
        }
        if let Ok(key) = ed25519_dalek::VerifyingKey::from_public_key_pem(&text) {
            return Ok(PublicKey(key));
        }
        Self::from_hex(text.trim()).map_err(|_| {
            anyhow::anyhow!(
                "{}: not an Ed25519 public key (SPKI PEM or 64 hex digits)",
                path.display()
            )
        })
    }

    pub fn from_hex(text: &str) -> anyhow::Result<Self> {
        let bytes: [u8; 32] = hex::decode(text)?
            .try_into()
            .map_err(|_| anyhow::anyhow!("an Ed25519 public key is 32 bytes"))?;
        Ok(PublicKey(ed25519_dalek::VerifyingKey::from_bytes(&bytes)?))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_bytes())
    }

    pub fn to_pem(&self) -> anyhow::Result<String> {
        self.0
            .to_public_key_pem(Default::default())
            .map_err(|e| anyhow::anyhow!("encoding the public key: {e}"))
    }

    /// sha256 of the raw 32-byte key, hex.
    pub fn fingerprint(&self) -> String {
        hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// Check a signature (strictly: no malleable or small-order forms).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        self.0.verify_strict(message, &signature).is_ok()
    }
}

fn with_suffix(prefix: &Path, ext: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_pair_loads_back_and_signs() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::generate().unwrap();
        let (private, public) = key.write_pair(&dir.path().join("k")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&private).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = SigningKey::load(&private).unwrap();
        let pubkey = PublicKey::load(&public).unwrap();
        assert_eq!(loaded.public(), pubkey);
        let sig = loaded.sign(b"manifest");
        assert!(pubkey.verify(b"manifest", &sig));
        assert!(!pubkey.verify(b"manifesT", &sig));
        assert!(
            key.write_pair(&dir.path().join("k")).is_err(),
            "no overwrite"
        );
        assert!(PublicKey::load(&private).is_err());
    }
}
