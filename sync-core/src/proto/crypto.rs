//! Per-datagram protection: key derivation and AEAD, all through `aws-lc-rs`.
//!
//! Owns turning the caller's 32-byte session secret into a session id and
//! one key per direction (HKDF-SHA256, RFC 5869), and sealing/opening a
//! datagram in place with AES-256-GCM. It never invents cryptography: the
//! nonce is the packet number, which the sender never reuses under a key,
//! and the header is the associated data. The secret must be fresh for every
//! session (the session layer exchanges it over its authenticated channel);
//! nothing here stores or logs it.
//!
//! [`Cipher::None`] is for trusted networks and benchmarks: datagrams carry
//! no tag and no integrity, only the framing checks of [`super::wire`].

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::hkdf;

use super::wire::{DatagramError, TAG_LEN};

/// Length of the session secret the caller supplies.
pub const SECRET_LEN: usize = 32;
/// HKDF salt: fixes the protocol and version the keys belong to.
const HKDF_SALT: &[u8] = b"sluice udp transport v1";

/// Which protection datagrams get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Cipher {
    /// AES-256-GCM with a 16-byte tag (the default).
    #[default]
    Aes256Gcm,
    /// No encryption and no integrity: trusted networks and benchmarks only.
    None,
}

/// Which way a datagram travels; each direction has its own key so that a
/// datagram can never be reflected back at its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    SenderToReceiver,
    ReceiverToSender,
}

impl Direction {
    fn label(self) -> &'static [u8] {
        match self {
            Direction::SenderToReceiver => b"data sender->receiver",
            Direction::ReceiverToSender => b"data receiver->sender",
        }
    }
}

/// The 32-byte secret both ends share for one session.
#[derive(Clone)]
pub struct SessionSecret(pub [u8; SECRET_LEN]);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(..)")
    }
}

impl SessionSecret {
    /// A fresh random secret from the system's CSPRNG.
    pub fn generate() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut s = [0u8; SECRET_LEN];
        aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut s)?;
        Ok(SessionSecret(s))
    }

    /// The session id carried in every datagram header, so datagrams of other
    /// sessions (or other programs) are dropped before any crypto runs.
    pub fn session_id(&self) -> u32 {
        let mut id = [0u8; 4];
        self.expand(b"session id", &mut id);
        u32::from_be_bytes(id)
    }

    fn expand(&self, label: &[u8], out: &mut [u8]) {
        struct Len(usize);
        impl hkdf::KeyType for Len {
            fn len(&self) -> usize {
                self.0
            }
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(&self.0);
        // Cannot fail: outputs here are at most 32 bytes, far below
        // HKDF-SHA256's 255 * 32 limit.
        let ok = prk
            .expand(&[label], Len(out.len()))
            .and_then(|okm| okm.fill(out));
        debug_assert!(ok.is_ok());
    }
}

/// Seals or opens datagrams for one direction.
pub struct PacketKey {
    aead: Option<LessSafeKey>,
}

impl std::fmt::Debug for PacketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cipher = if self.aead.is_some() {
            "Aes256Gcm"
        } else {
            "None"
        };
        write!(f, "PacketKey({cipher})")
    }
}

impl PacketKey {
    /// Derives the key for `direction` from the session secret.
    pub fn new(secret: &SessionSecret, cipher: Cipher, direction: Direction) -> Self {
        let aead = match cipher {
            Cipher::None => None,
            Cipher::Aes256Gcm => {
                let mut key = [0u8; 32];
                secret.expand(direction.label(), &mut key);
                // Cannot fail: the key is exactly AES-256's length.
                UnboundKey::new(&AES_256_GCM, &key)
                    .ok()
                    .map(LessSafeKey::new)
            }
        };
        PacketKey { aead }
    }

    /// Bytes the tag adds to a datagram.
    pub fn tag_len(&self) -> usize {
        if self.aead.is_some() {
            TAG_LEN
        } else {
            0
        }
    }

    /// Encrypts `payload` in place and writes the tag into `tag_out`
    /// (which must be [`tag_len`](Self::tag_len) long).
    pub fn seal(&self, pn: u64, header: &[u8], payload: &mut [u8], tag_out: &mut [u8]) {
        if let Some(key) = &self.aead {
            // seal_in_place only fails for inputs beyond 64 GiB.
            if let Ok(tag) = key.seal_in_place_separate_tag(nonce(pn), Aad::from(header), payload) {
                tag_out.copy_from_slice(tag.as_ref());
            }
        }
    }

    /// Encrypts `plain` into `payload` (of the same length) and writes the
    /// tag into `tag_out`: [`seal`](Self::seal) without first copying the
    /// plaintext into the datagram.
    pub fn seal_from(
        &self,
        pn: u64,
        header: &[u8],
        plain: &[u8],
        payload: &mut [u8],
        tag_out: &mut [u8],
    ) {
        match &self.aead {
            None => payload.copy_from_slice(plain),
            // Fails only for mismatched lengths, which the caller rules
            // out, or inputs beyond 64 GiB.
            Some(key) => {
                let _ = key.seal_out_of_place_scatter(
                    nonce(pn),
                    Aad::from(header),
                    plain,
                    payload,
                    &[],
                    tag_out,
                );
            }
        }
    }

    /// Authenticates and decrypts `body` (payload followed by the tag) in
    /// place; returns the plaintext payload.
    pub fn open<'a>(
        &self,
        pn: u64,
        header: &[u8],
        body: &'a mut [u8],
    ) -> Result<&'a mut [u8], DatagramError> {
        match &self.aead {
            None => Ok(body),
            Some(key) => key
                .open_in_place(nonce(pn), Aad::from(header), body)
                .map_err(|_| DatagramError::AuthFailed),
        }
    }

    /// Authenticates `body` (payload followed by the tag) and decrypts the
    /// payload into `out`, which must be exactly the payload's length. On
    /// error `out` holds garbage.
    pub fn open_to(
        &self,
        pn: u64,
        header: &[u8],
        body: &[u8],
        out: &mut [u8],
    ) -> Result<(), DatagramError> {
        let tag_at = body
            .len()
            .checked_sub(self.tag_len())
            .filter(|&at| at == out.len())
            .ok_or(DatagramError::AuthFailed)?;
        let (payload, tag) = body.split_at(tag_at);
        match &self.aead {
            None => {
                out.copy_from_slice(payload);
                Ok(())
            }
            Some(key) => key
                .open_separate_gather(nonce(pn), Aad::from(header), payload, tag, out)
                .map_err(|_| DatagramError::AuthFailed),
        }
    }
}

/// The 96-bit GCM nonce: four zero bytes then the packet number. Unique per
/// key because the sender's packet numbers strictly increase.
fn nonce(pn: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&pn.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_round_trips_and_tampering_fails() {
        let secret = SessionSecret([7; 32]);
        let tx = PacketKey::new(&secret, Cipher::Aes256Gcm, Direction::SenderToReceiver);
        let rx = PacketKey::new(&secret, Cipher::Aes256Gcm, Direction::SenderToReceiver);
        let header = [1u8; 28];
        let mut body = b"hello world".to_vec();
        body.extend_from_slice(&[0; TAG_LEN]);
        let (payload, tag) = body.split_at_mut(11);
        tx.seal(9, &header, payload, tag);
        assert_ne!(&body[..11], b"hello world");

        let mut copy = body.clone();
        assert_eq!(rx.open(9, &header, &mut copy).unwrap(), b"hello world");
        let mut copy = body.clone();
        assert_eq!(
            rx.open(10, &header, &mut copy),
            Err(DatagramError::AuthFailed)
        );
        let mut copy = body.clone();
        assert_eq!(
            rx.open(9, &[2u8; 28], &mut copy),
            Err(DatagramError::AuthFailed)
        );
        let mut copy = body.clone();
        copy[0] ^= 1;
        assert_eq!(
            rx.open(9, &header, &mut copy),
            Err(DatagramError::AuthFailed)
        );
        let other = PacketKey::new(&secret, Cipher::Aes256Gcm, Direction::ReceiverToSender);
        let mut copy = body.clone();
        assert_eq!(
            other.open(9, &header, &mut copy),
            Err(DatagramError::AuthFailed)
        );
        let mut short = vec![0u8; 3];
        assert_eq!(
            rx.open(9, &header, &mut short),
            Err(DatagramError::AuthFailed)
        );
    }

    #[test]
    fn session_ids_differ_between_secrets() {
        let a = SessionSecret([1; 32]).session_id();
        assert_eq!(a, SessionSecret([1; 32]).session_id());
        assert_ne!(a, SessionSecret([2; 32]).session_id());
    }
}
