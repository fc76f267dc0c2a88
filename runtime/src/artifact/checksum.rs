//! go-getter's `checksum` option: `type:hex` with type `md5`, `sha1`, `sha256` or `sha512`, or a
//! bare hex digest whose type is told by its length (as go-getter guesses it).

use sha2::Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumKind {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl ChecksumKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumKind::Md5 => "md5",
            ChecksumKind::Sha1 => "sha1",
            ChecksumKind::Sha256 => "sha256",
            ChecksumKind::Sha512 => "sha512",
        }
    }

    /// Hex digits in a digest of this kind.
    fn hex_len(self) -> usize {
        match self {
            ChecksumKind::Md5 => 32,
            ChecksumKind::Sha1 => 40,
            ChecksumKind::Sha256 => 64,
            ChecksumKind::Sha512 => 128,
        }
    }

    const ALL: [ChecksumKind; 4] = [
        ChecksumKind::Md5,
        ChecksumKind::Sha1,
        ChecksumKind::Sha256,
        ChecksumKind::Sha512,
    ];
}

/// An expected digest, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub kind: ChecksumKind,
    pub hex: String,
}

impl Checksum {
    /// Parses `sha256:…` (or a bare digest); the error says what is wrong with it.
    pub fn parse(value: &str) -> Result<Checksum, String> {
        let value = value.trim();
        let (kind, hex) = match value.split_once(':') {
            Some((t, hex)) => {
                let kind = ChecksumKind::ALL
                    .into_iter()
                    .find(|k| k.as_str().eq_ignore_ascii_case(t))
                    .ok_or_else(|| {
                        if t == "file" {
                            "checksum files (file:URL) are not supported; give the digest itself"
                                .to_string()
                        } else {
                            format!("unsupported checksum type {t:?}: expected md5, sha1, sha256 or sha512")
                        }
                    })?;
                (kind, hex)
            }
            None => {
                let kind = ChecksumKind::ALL
                    .into_iter()
                    .find(|k| k.hex_len() == value.len())
                    .ok_or_else(|| {
                        format!(
                            "checksum {value:?} has no type and its length ({}) is no known digest's; write it as type:value (e.g. sha256:…)",
                            value.len()
                        )
                    })?;
                (kind, value)
            }
        };
        if hex.len() != kind.hex_len() {
            return Err(format!(
                "a {} checksum has {} hex digits, got {}",
                kind.as_str(),
                kind.hex_len(),
                hex.len()
            ));
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("checksum {hex:?} is not hexadecimal"));
        }
        Ok(Checksum {
            kind,
            hex: hex.to_ascii_lowercase(),
        })
    }
}

/// A running digest of the bytes fetched.
pub enum Hasher {
    Md5(md5::Md5),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(kind: ChecksumKind) -> Hasher {
        match kind {
            ChecksumKind::Md5 => Hasher::Md5(md5::Md5::new()),
            ChecksumKind::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            ChecksumKind::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            ChecksumKind::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// Lower-case hex.
    pub fn finish(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_and_bare_digests_parse() {
        let c = Checksum::parse(
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        )
        .expect("sha256");
        assert_eq!(c.kind, ChecksumKind::Sha256);
        assert_eq!(
            c.hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let c = Checksum::parse("d41d8cd98f00b204e9800998ecf8427e").expect("bare md5");
        assert_eq!(c.kind, ChecksumKind::Md5);
        let c = Checksum::parse("sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709").expect("sha1");
        assert_eq!(c.kind, ChecksumKind::Sha1);
        assert_eq!(
            Checksum::parse(&format!("sha512:{}", "a".repeat(128)))
                .expect("sha512")
                .kind,
            ChecksumKind::Sha512
        );
    }

    #[test]
    fn malformed_checksums_say_why() {
        let e = Checksum::parse("sha256:abc").expect_err("short");
        assert!(e.contains("64 hex digits, got 3"), "{e}");
        let e = Checksum::parse("crc32:abcd").expect_err("type");
        assert!(e.contains("unsupported checksum type \"crc32\""), "{e}");
        let e = Checksum::parse(&format!("md5:{}", "z".repeat(32))).expect_err("hex");
        assert!(e.contains("not hexadecimal"), "{e}");
        let e = Checksum::parse("file:https://example.com/SHA256SUMS").expect_err("file");
        assert!(e.contains("not supported"), "{e}");
        let e = Checksum::parse("abc").expect_err("bare");
        assert!(e.contains("type:value"), "{e}");
    }

    #[test]
    fn digests_of_known_inputs() {
        let digest = |kind, data: &[u8]| {
            let mut h = Hasher::new(kind);
            h.update(data);
            h.finish()
        };
        assert_eq!(
            digest(ChecksumKind::Md5, b""),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            digest(ChecksumKind::Sha1, b"abc"),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            digest(ChecksumKind::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digest(ChecksumKind::Sha512, b"abc").starts_with("ddaf35a193617aba"));
    }
}
