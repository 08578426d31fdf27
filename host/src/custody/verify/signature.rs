//! A manifest's signature: against a pinned key (`irhost verify --key`),
//! or against the key the manifest embeds; an unsigned manifest must say
//! so and have no `.sig`.

use super::{problem, Problem, ProblemKind};
use crate::custody::keys::PublicKey;
use crate::custody::manifest::{self, Manifest};

/// A manifest whose signature (if any) holds.
pub(super) struct Checked {
    pub(super) manifest: Manifest,
    pub(super) signer: Option<PublicKey>,
}

/// Check a manifest file and its `.sig`; with `pinned`, it must be signed
/// by that key.
pub(super) fn check_signed(
    subject: &str,
    bytes: &[u8],
    sig: Option<&[u8]>,
    pinned: Option<&PublicKey>,
) -> Result<Checked, Problem> {
    let parsed: Result<Manifest, String> = serde_json::from_slice(bytes).map_err(|e| e.to_string());
    match pinned {
        Some(key) => check_pinned(subject, bytes, sig, key, parsed),
        None => check_embedded(subject, bytes, sig, parsed),
    }
}

/// An Ed25519 signature file's bytes.
fn decode_signature(sig_subject: &str, sig: &[u8]) -> Result<[u8; 64], Problem> {
    manifest::decode_signature(sig).map_err(|e| {
        problem(
            ProblemKind::BadSignature,
            sig_subject,
            format!("not an Ed25519 signature: {e}"),
        )
    })
}

/// The manifest must be signed by the pinned `key`.
fn check_pinned(
    subject: &str,
    bytes: &[u8],
    sig: Option<&[u8]>,
    key: &PublicKey,
    parsed: Result<Manifest, String>,
) -> Result<Checked, Problem> {
    let sig_subject = manifest::sig_path_of(subject);
    let Some(sig) = sig else {
        return Err(match &parsed {
            Ok(m) if m.signature.is_none() => problem(
                ProblemKind::BadSignature,
                subject,
                "the case is unsigned, but --key requires a signature by that key",
            ),
            _ => problem(
                ProblemKind::MissingFile,
                &sig_subject,
                "the signature file is missing",
            ),
        });
    };
    let sig = decode_signature(&sig_subject, sig)?;
    if !key.verify(bytes, &sig) {
        let embedded = parsed
            .as_ref()
            .ok()
            .and_then(|m| m.signature.as_ref())
            .and_then(|s| PublicKey::from_hex(&s.public_key).ok())
            .filter(|k| k.verify(bytes, &sig));
        return Err(match embedded {
            Some(other) => problem(
                ProblemKind::WrongKey,
                subject,
                format!(
                    "signed by key {}, not by the pinned key {}",
                    other.fingerprint(),
                    key.fingerprint()
                ),
            ),
            None => problem(
                ProblemKind::BadSignature,
                subject,
                format!(
                    "{sig_subject} does not verify over {subject} with the pinned key {}: one of them was changed",
                    key.fingerprint()
                ),
            ),
        });
    }
    let manifest = parsed.map_err(|e| {
        problem(
            ProblemKind::Malformed,
            subject,
            format!("signed, but not a manifest: {e}"),
        )
    })?;
    match &manifest.signature {
        Some(info) if info.key_fingerprint == key.fingerprint() => Ok(Checked {
            manifest,
            signer: Some(key.clone()),
        }),
        _ => Err(problem(
            ProblemKind::ManifestMismatch,
            subject,
            "its signature block does not name the key that signed it",
        )),
    }
}

/// Without a pinned key: signed by the key the manifest embeds, or
/// unsigned and saying so.
fn check_embedded(
    subject: &str,
    bytes: &[u8],
    sig: Option<&[u8]>,
    parsed: Result<Manifest, String>,
) -> Result<Checked, Problem> {
    let sig_subject = manifest::sig_path_of(subject);
    let manifest = match parsed {
        Ok(m) => m,
        Err(e) if sig.is_some() => {
            return Err(problem(
                ProblemKind::BadSignature,
                subject,
                format!("not a valid manifest any more, it was changed after it was signed ({e})"),
            ))
        }
        Err(e) => return Err(problem(ProblemKind::Malformed, subject, e)),
    };
    let Some(info) = &manifest.signature else {
        if sig.is_some() {
            return Err(problem(
                ProblemKind::BadSignature,
                subject,
                format!(
                    "it says it is unsigned, but {sig_subject} exists: the manifest was changed"
                ),
            ));
        }
        return Ok(Checked {
            manifest,
            signer: None,
        });
    };
    let Some(sig) = sig else {
        return Err(problem(
            ProblemKind::MissingFile,
            &sig_subject,
            format!(
                "the manifest says it is signed by {}, the signature file is missing",
                info.key_fingerprint
            ),
        ));
    };
    let key = PublicKey::from_hex(&info.public_key).map_err(|e| {
        problem(
            ProblemKind::BadSignature,
            subject,
            format!("the embedded public key is invalid: {e}"),
        )
    })?;
    if key.fingerprint() != info.key_fingerprint {
        return Err(problem(
            ProblemKind::BadSignature,
            subject,
            "the embedded public key does not match its fingerprint",
        ));
    }
    let sig = decode_signature(&sig_subject, sig)?;
    if !key.verify(bytes, &sig) {
        return Err(problem(
            ProblemKind::BadSignature,
            subject,
            format!("{sig_subject} does not verify over {subject}: one of them was changed"),
        ));
    }
    Ok(Checked {
        manifest,
        signer: Some(key),
    })
}
