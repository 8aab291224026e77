//! What a `use: tls` Credential holds, read for real: its certificate parsed as X.509, the
//! names it covers, and whether its private key belongs to it. `apache2 -t` checks only
//! that the certificate files exist; a certificate that does not parse, or a key of another
//! certificate, passes that check and then stops Apache at its restart — every front door
//! down at once. So these are validation errors, before anything reaches a host.

use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// The first certificate of a PEM chain: the names it is valid for (DNS names and IP
/// addresses of its subjectAltName) and its public key (the subjectPublicKey bits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub names: Vec<String>,
    pub public_key: Vec<u8>,
}

/// Reads the leaf of `pem` (leaf first, as Apache wants it). The error says what is wrong
/// in words a person can act on; it never holds key material (a certificate is public).
pub fn leaf(pem: &str) -> Result<Leaf, String> {
    let mut blocks = Pem::iter_from_buffer(pem.as_bytes());
    let block = match blocks.next() {
        Some(Ok(b)) => b,
        Some(Err(e)) => return Err(format!("is not PEM ({e})")),
        None => return Err("is not PEM (no -----BEGIN CERTIFICATE----- block)".into()),
    };
    if block.label != "CERTIFICATE" {
        return Err(format!(
            "starts with a {} block, not a CERTIFICATE",
            block.label
        ));
    }
    let cert = block
        .parse_x509()
        .map_err(|e| format!("is not an X.509 certificate ({e})"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => names.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(ip) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                        names.push(std::net::Ipv4Addr::from(v4).to_string());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                        names.push(std::net::Ipv6Addr::from(v6).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Leaf {
        names,
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// Whether `name` is covered by `names` (a `*.example.org` wildcard covers one label).
pub fn covers(names: &[String], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    names.iter().any(|n| {
        n == &name
            || n.strip_prefix("*.").is_some_and(|suffix| {
                name.split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
            })
    })
}

/// Whether the private key `key_pem` belongs to `leaf`. `None`: a key this check cannot
/// read (RSA in PKCS#1 form, say), which Apache may still take: not refused, not vouched
/// for either.
pub fn key_matches(leaf: &Leaf, key_pem: &str) -> Option<bool> {
    let key = rcgen::KeyPair::from_pem(key_pem).ok()?;
    Some(key.public_key_raw() == leaf.public_key.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(
            names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_certificate_gives_its_names_and_its_key_matches() {
        let (cert, key) = issue(&["registry.omtd", "10.0.0.10"]);
        let leaf = leaf(&cert).unwrap();
        assert_eq!(leaf.names, ["registry.omtd", "10.0.0.10"]);
        assert_eq!(key_matches(&leaf, &key), Some(true));
        let (_, other) = issue(&["registry.omtd"]);
        assert_eq!(key_matches(&leaf, &other), Some(false));
        assert_eq!(
            key_matches(
                &leaf,
                "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
            ),
            None
        );
    }

    #[test]
    fn what_is_not_a_certificate_says_so() {
        assert!(leaf("not pem").unwrap_err().contains("not PEM"));
        let bogus = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        assert!(leaf(bogus).is_err());
        let (_, key) = issue(&["x"]);
        assert!(leaf(&key).unwrap_err().contains("not a CERTIFICATE"));
    }

    #[test]
    fn wildcards_cover_one_label() {
        let names = vec![
            "*.omtd.example.org".to_owned(),
            "galaxy.example.org".to_owned(),
        ];
        assert!(covers(&names, "registry.omtd.example.org"));
        assert!(covers(&names, "Galaxy.Example.org"));
        assert!(!covers(&names, "a.b.omtd.example.org"));
        assert!(!covers(&names, "omtd.example.org"));
    }
}
