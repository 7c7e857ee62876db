//! Sealing of credential values: HPKE (RFC 9180) base mode with DHKEM(X25519, HKDF-SHA256),
//! HKDF-SHA256 and AES-256-GCM.
//!
//! The API server holds only [`PublicKeySet`] and seals a key the moment it arrives; the operator
//! holds the [`KeySet`] (private keys) and opens a value when it binds it to a session. Every
//! sealed value names the key that sealed it, so a key set can be renewed: the new key seals, old
//! keys still open, and [`KeySet::reseal`] moves a value to the current key.
//!
//! The sealed text form is `spseal1.<key id>.<base64url(encapsulated key || ciphertext)>`. The
//! caller passes a *context* (for example `namespace/credential-name`) that is bound into the
//! AEAD as associated data, so a ciphertext copied to another credential does not open.
//!
//! This module must never format a private key or an opened value (they are [`SecretBytes`] and
//! [`Secret`]).

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hpke::aead::AesGcm256;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::{Secret, SecretBytes};

type Kem = X25519HkdfSha256;

/// Prefix and version of the sealed text form.
pub const SEALED_PREFIX: &str = "spseal1";
/// HPKE `info`: domain separation for sealpod credential values.
const INFO: &[u8] = b"sealpod.dev credential v1";
const ENCAPPED_LEN: usize = 32;
const KEY_LEN: usize = 32;

/// Identifies a sealing key: the first 8 bytes of SHA-256 of its public key, as 16 hex chars.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    fn of(public: &[u8]) -> KeyId {
        KeyId(hex::encode(&Sha256::digest(public)[..8]))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why sealing, opening or loading keys failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealingError {
    /// The sealed text is not of the form `spseal1.<key id>.<payload>`.
    #[error("sealed value is malformed: {0}")]
    Malformed(&'static str),
    /// No key of the set has this id.
    #[error("sealed value names unknown key id {0}")]
    UnknownKeyId(KeyId),
    /// The value was sealed for another key than the one used to open it.
    #[error("sealed value names key id {sealed_for}, not this key ({this_key})")]
    WrongKey {
        /// The key id in the sealed value.
        sealed_for: KeyId,
        /// The key id of the key used.
        this_key: KeyId,
    },
    /// Authentication failed: the value was tampered with, or sealed under another context.
    #[error("sealed value failed authentication (tampered, or sealed for another context)")]
    Decrypt,
    /// The opened bytes are not UTF-8 text.
    #[error("opened value is not UTF-8 text")]
    NotText,
    /// Sealing failed inside HPKE.
    #[error("sealing failed")]
    Seal,
    /// A stored key set or public key file could not be read.
    #[error("key material is invalid: {0}")]
    InvalidKeys(String),
}

/// A sealed value in its text form. Safe to store and log (it reveals only the key id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedValue(String);

impl SealedValue {
    /// Wraps a stored sealed text (checked when opened).
    pub fn from_text(text: impl Into<String>) -> SealedValue {
        SealedValue(text.into())
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key id this value was sealed for.
    pub fn key_id(&self) -> Result<KeyId, SealingError> {
        self.parts().map(|(kid, _)| kid)
    }

    fn parts(&self) -> Result<(KeyId, Vec<u8>), SealingError> {
        let mut it = self.0.splitn(3, '.');
        let (Some(prefix), Some(kid), Some(payload)) = (it.next(), it.next(), it.next()) else {
            return Err(SealingError::Malformed(
                "expected three dot-separated parts",
            ));
        };
        if prefix != SEALED_PREFIX {
            return Err(SealingError::Malformed("unknown prefix or version"));
        }
        if kid.len() != 16 || !kid.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SealingError::Malformed("key id is not 16 hex characters"));
        }
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| SealingError::Malformed("payload is not base64url"))?;
        if payload.len() < ENCAPPED_LEN + 16 {
            return Err(SealingError::Malformed("payload is too short"));
        }
        Ok((KeyId(kid.to_ascii_lowercase()), payload))
    }
}

impl fmt::Display for SealedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A public sealing key: what the API server holds.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    id: KeyId,
    bytes: [u8; KEY_LEN],
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").field("id", &self.id).finish()
    }
}

impl PublicKey {
    /// Reads a public key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, SealingError> {
        let bytes: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| SealingError::InvalidKeys("a public key is 32 bytes".into()))?;
        Ok(PublicKey {
            id: KeyId::of(&bytes),
            bytes,
        })
    }

    /// The key id.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The raw public key.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.bytes
    }

    /// Seals `plaintext` for this key, bound to `context`.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<SealedValue, SealingError> {
        let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&self.bytes)
            .map_err(|_| SealingError::InvalidKeys("public key rejected by X25519".into()))?;
        let (encapped, ciphertext) = hpke::single_shot_seal::<AesGcm256, HkdfSha256, Kem>(
            &OpModeS::Base,
            &pk,
            INFO,
            plaintext,
            context,
        )
        .map_err(|_| SealingError::Seal)?;
        let mut payload = encapped.to_bytes().to_vec();
        payload.extend_from_slice(&ciphertext);
        Ok(SealedValue(format!(
            "{SEALED_PREFIX}.{}.{}",
            self.id,
            URL_SAFE_NO_PAD.encode(payload)
        )))
    }
}

/// A key pair: what the operator holds.
#[derive(Clone)]
pub struct KeyPair {
    public: PublicKey,
    private: SecretBytes,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("id", &self.public.id)
            .field("private", &self.private)
            .finish()
    }
}

impl KeyPair {
    /// A new random key pair.
    pub fn generate() -> KeyPair {
        let (private, public) = Kem::gen_keypair();
        let public = PublicKey::from_bytes(&public.to_bytes())
            .expect("X25519 public keys are 32 bytes by construction");
        KeyPair {
            public,
            private: SecretBytes::new(private.to_bytes().to_vec()),
        }
    }

    /// Rebuilds a key pair from its private key bytes.
    pub fn from_private_bytes(bytes: &[u8]) -> Result<KeyPair, SealingError> {
        let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes)
            .map_err(|_| SealingError::InvalidKeys("a private key is 32 bytes".into()))?;
        let public = PublicKey::from_bytes(&Kem::sk_to_pk(&private).to_bytes())?;
        Ok(KeyPair {
            public,
            private: SecretBytes::new(bytes.to_vec()),
        })
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The key id.
    pub fn id(&self) -> &KeyId {
        &self.public.id
    }

    /// Opens a value sealed for this key under `context`.
    pub fn open(&self, sealed: &SealedValue, context: &[u8]) -> Result<SecretBytes, SealingError> {
        let (kid, payload) = sealed.parts()?;
        if &kid != self.id() {
            return Err(SealingError::WrongKey {
                sealed_for: kid,
                this_key: self.id().clone(),
            });
        }
        self.open_payload(&payload, context)
    }

    fn open_payload(&self, payload: &[u8], context: &[u8]) -> Result<SecretBytes, SealingError> {
        let (encapped, ciphertext) = payload.split_at(ENCAPPED_LEN);
        let encapped = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapped)
            .map_err(|_| SealingError::Malformed("encapsulated key is invalid"))?;
        let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(self.private.expose())
            .map_err(|_| SealingError::InvalidKeys("private key rejected by X25519".into()))?;
        hpke::single_shot_open::<AesGcm256, HkdfSha256, Kem>(
            &OpModeR::Base,
            &private,
            &encapped,
            INFO,
            ciphertext,
            context,
        )
        .map(SecretBytes::new)
        .map_err(|_| SealingError::Decrypt)
    }
}

/// The operator's key set: every key that may open, and the one that seals.
#[derive(Debug, Clone)]
pub struct KeySet {
    current: KeyId,
    keys: BTreeMap<KeyId, KeyPair>,
}

/// The exported form of a [`KeySet`] (stored in a Secret only the operator reads).
#[derive(Serialize, Deserialize)]
struct KeySetFile {
    current: KeyId,
    /// key id → base64 private key
    keys: BTreeMap<KeyId, String>,
}

/// The public keys of a key set, as the API server reads them (a ConfigMap entry). Only
/// `current` is used to seal; the others are listed so readers can tell which keys exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeySet {
    /// The key id new values are sealed with.
    pub current: KeyId,
    /// key id → base64 public key
    pub keys: BTreeMap<KeyId, String>,
}

impl PublicKeySet {
    /// The key new values are sealed with.
    pub fn current_key(&self) -> Result<PublicKey, SealingError> {
        let encoded = self.keys.get(&self.current).ok_or_else(|| {
            SealingError::InvalidKeys(format!("current key {} is not listed", self.current))
        })?;
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SealingError::InvalidKeys("public key is not base64".into()))?;
        let key = PublicKey::from_bytes(&bytes)?;
        if key.id != self.current {
            return Err(SealingError::InvalidKeys(format!(
                "key listed as {} has id {}",
                self.current, key.id
            )));
        }
        Ok(key)
    }

    /// Seals with the current key.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<SealedValue, SealingError> {
        self.current_key()?.seal(context, plaintext)
    }
}

impl KeySet {
    /// A key set with one new key.
    pub fn generate() -> KeySet {
        let pair = KeyPair::generate();
        let current = pair.id().clone();
        KeySet {
            current: current.clone(),
            keys: BTreeMap::from([(current, pair)]),
        }
    }

    /// Adds a new key and makes it current; older keys keep opening their values.
    pub fn renew(&mut self) -> KeyId {
        let pair = KeyPair::generate();
        let id = pair.id().clone();
        self.keys.insert(id.clone(), pair);
        self.current = id.clone();
        id
    }

    /// Drops a key that is no longer current (after every value was resealed).
    pub fn retire(&mut self, id: &KeyId) -> Result<(), SealingError> {
        if id == &self.current {
            return Err(SealingError::InvalidKeys(
                "the current key cannot be retired".into(),
            ));
        }
        self.keys
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| SealingError::UnknownKeyId(id.clone()))
    }

    /// The current key pair.
    pub fn current(&self) -> &KeyPair {
        // The constructor and every mutation keep `current` among `keys`.
        &self.keys[&self.current]
    }

    /// Ids of every key, oldest first by id order.
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }

    /// Seals with the current key.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<SealedValue, SealingError> {
        self.current().public().seal(context, plaintext)
    }

    /// Opens a value sealed for any key of the set.
    pub fn open(&self, sealed: &SealedValue, context: &[u8]) -> Result<SecretBytes, SealingError> {
        let (kid, payload) = sealed.parts()?;
        let pair = self
            .keys
            .get(&kid)
            .ok_or_else(|| SealingError::UnknownKeyId(kid.clone()))?;
        pair.open_payload(&payload, context)
    }

    /// Opens a value that holds UTF-8 text (a credential key).
    pub fn open_text(&self, sealed: &SealedValue, context: &[u8]) -> Result<Secret, SealingError> {
        let bytes = self.open(sealed, context)?;
        std::str::from_utf8(bytes.expose())
            .map(Secret::new)
            .map_err(|_| SealingError::NotText)
    }

    /// Opens a value with whichever key sealed it and seals it again with the current key.
    pub fn reseal(
        &self,
        sealed: &SealedValue,
        context: &[u8],
    ) -> Result<SealedValue, SealingError> {
        let opened = self.open(sealed, context)?;
        self.seal(context, opened.expose())
    }

    /// The public keys, for the API server.
    pub fn public_keys(&self) -> PublicKeySet {
        PublicKeySet {
            current: self.current.clone(),
            keys: self
                .keys
                .iter()
                .map(|(id, pair)| (id.clone(), STANDARD.encode(pair.public().as_bytes())))
                .collect(),
        }
    }

    /// Exports the private key set as JSON, wrapped so it cannot be printed.
    pub fn export(&self) -> Secret {
        let file = KeySetFile {
            current: self.current.clone(),
            keys: self
                .keys
                .iter()
                .map(|(id, pair)| (id.clone(), STANDARD.encode(pair.private.expose())))
                .collect(),
        };
        Secret::new(
            serde_json::to_string(&file).expect("a map of strings always serializes to JSON"),
        )
    }

    /// Imports a key set exported by [`KeySet::export`].
    pub fn import(exported: &Secret) -> Result<KeySet, SealingError> {
        let file: KeySetFile = serde_json::from_str(exported.expose())
            .map_err(|e| SealingError::InvalidKeys(format!("key set is not valid JSON: {e}")))?;
        let mut keys = BTreeMap::new();
        for (id, encoded) in &file.keys {
            let bytes = SecretBytes::new(
                STANDARD
                    .decode(encoded)
                    .map_err(|_| SealingError::InvalidKeys("private key is not base64".into()))?,
            );
            let pair = KeyPair::from_private_bytes(bytes.expose())?;
            if pair.id() != id {
                return Err(SealingError::InvalidKeys(format!(
                    "key listed as {id} has id {}",
                    pair.id()
                )));
            }
            keys.insert(id.clone(), pair);
        }
        if !keys.contains_key(&file.current) {
            return Err(SealingError::InvalidKeys(format!(
                "current key {} is not in the set",
                file.current
            )));
        }
        Ok(KeySet {
            current: file.current,
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"sk-ant-api03-fake-0123456789";
    const CTX: &[u8] = b"tenant-a/cred-abc";

    #[test]
    fn seal_then_open_round_trips() {
        let set = KeySet::generate();
        let sealed = set.public_keys().seal(CTX, KEY).expect("seal");
        assert!(sealed.as_str().starts_with("spseal1."));
        assert_eq!(&sealed.key_id().expect("kid"), set.current().id());
        assert!(!sealed.as_str().contains("sk-ant"));
        assert_eq!(set.open(&sealed, CTX).expect("open").expose(), KEY);
        assert_eq!(
            set.current().open(&sealed, CTX).expect("open").expose(),
            KEY
        );
        // Sealing twice gives different ciphertexts (fresh encapsulation each time).
        assert_ne!(set.seal(CTX, KEY).expect("seal"), sealed);
    }

    #[test]
    fn tampered_ciphertext_fails_to_open() {
        let set = KeySet::generate();
        let sealed = set.seal(CTX, KEY).expect("seal");
        let (head, payload) = sealed.as_str().rsplit_once('.').expect("three parts");
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).expect("b64");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        let tampered = SealedValue::from_text(format!("{head}.{}", URL_SAFE_NO_PAD.encode(bytes)));
        assert_eq!(open_err(&set, &tampered, CTX), SealingError::Decrypt);
    }

    fn open_err(set: &KeySet, sealed: &SealedValue, ctx: &[u8]) -> SealingError {
        match set.open(sealed, ctx) {
            Ok(_) => panic!("opened a value that must not open"),
            Err(e) => e,
        }
    }

    #[test]
    fn errors_are_typed() {
        let set = KeySet::generate();
        let other = KeySet::generate();
        let sealed = set.seal(CTX, KEY).expect("seal");

        // Another key set does not know the key id.
        assert_eq!(
            open_err(&other, &sealed, CTX),
            SealingError::UnknownKeyId(set.current().id().clone())
        );
        // A single wrong key says so.
        assert!(matches!(
            other.current().open(&sealed, CTX),
            Err(SealingError::WrongKey { .. })
        ));
        // A ciphertext relabelled with another key's id fails authentication.
        let relabelled = SealedValue::from_text(sealed.as_str().replacen(
            set.current().id().as_str(),
            other.current().id().as_str(),
            1,
        ));
        assert_eq!(open_err(&other, &relabelled, CTX), SealingError::Decrypt);
        // Another context (a ciphertext moved to another credential) fails authentication.
        assert_eq!(
            open_err(&set, &sealed, b"tenant-b/cred-abc"),
            SealingError::Decrypt
        );
        // Bit flip in the payload.
        let (head, payload) = sealed.as_str().rsplit_once('.').expect("three parts");
        let mut bytes = URL_SAFE_NO_PAD.decode(payload).expect("b64");
        bytes[ENCAPPED_LEN + 3] ^= 0x80;
        let flipped = SealedValue::from_text(format!("{head}.{}", URL_SAFE_NO_PAD.encode(bytes)));
        assert_eq!(open_err(&set, &flipped, CTX), SealingError::Decrypt);
        // Malformed forms.
        for bad in [
            "",
            "spseal1",
            "spseal2.0011223344556677.AAAA",
            "spseal1.zz.AAAA",
            "spseal1.0011223344556677.!!",
        ] {
            assert!(
                matches!(
                    open_err(&set, &SealedValue::from_text(bad), CTX),
                    SealingError::Malformed(_)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn renewal_keeps_old_values_openable_and_reseal_moves_them() {
        let mut set = KeySet::generate();
        let old_id = set.current().id().clone();
        let old = set.seal(CTX, KEY).expect("seal");
        let new_id = set.renew();
        assert_ne!(old_id, new_id);
        assert_eq!(set.key_ids().count(), 2);
        assert_eq!(set.open(&old, CTX).expect("old opens").expose(), KEY);
        let fresh = set.public_keys().seal(CTX, KEY).expect("seal");
        assert_eq!(fresh.key_id().expect("kid"), new_id);
        let resealed = set.reseal(&old, CTX).expect("reseal");
        assert_eq!(resealed.key_id().expect("kid"), new_id);
        set.retire(&old_id).expect("retire");
        assert_eq!(
            open_err(&set, &old, CTX),
            SealingError::UnknownKeyId(old_id)
        );
        assert_eq!(set.open(&resealed, CTX).expect("open").expose(), KEY);
        assert!(set.retire(&new_id).is_err(), "the current key stays");
    }

    #[test]
    fn export_import_round_trips_and_never_prints() {
        let mut set = KeySet::generate();
        set.renew();
        let sealed = set.seal(CTX, KEY).expect("seal");
        let exported = set.export();
        assert_eq!(format!("{exported:?}"), "[redacted]");
        assert_eq!(format!("{set:?}").matches("[redacted]").count(), 2);
        let imported = KeySet::import(&exported).expect("import");
        assert_eq!(
            imported.open_text(&sealed, CTX).expect("open").expose(),
            "sk-ant-api03-fake-0123456789"
        );
        assert_eq!(imported.public_keys(), set.public_keys());
        let public_json = serde_json::to_string(&set.public_keys()).expect("json");
        let public: PublicKeySet = serde_json::from_str(&public_json).expect("parse");
        assert_eq!(public.current_key().expect("key").id(), set.current().id());
        assert!(matches!(
            KeySet::import(&Secret::new("{}")),
            Err(SealingError::InvalidKeys(_))
        ));
    }
}
