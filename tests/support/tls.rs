//! Certificates made for a test (a CA, a server certificate for 127.0.0.1
//! and localhost, a client certificate), a web config file using them, and
//! a small HTTPS client over rustls for the requests the tests make.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// The password of user `alice` in [`Pki::web_config`].
pub const PASSWORD: &str = "s3cret";

/// A directory with `ca.pem`, `server.pem`/`server.key` and
/// `client.pem`/`client.key`, removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("promwasm-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        let pki = Pki {
            dir,
            issuer: Issuer::new(ca, ca_key),
        };
        pki.leaf("server", ExtendedKeyUsagePurpose::ServerAuth);
        pki.leaf("client", ExtendedKeyUsagePurpose::ClientAuth);
        pki
    }

    /// Makes `NAME.pem` and `NAME.key`, signed by the CA (again: a new key
    /// and certificate each time); returns the certificate's DER.
    pub fn leaf(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::write(self.dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
        cert.der().to_vec()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `web.yml`: TLS with the server certificate, `client_auth`
    /// (`NoClientCert`, or a verifying type with the CA), and user `alice`
    /// with [`PASSWORD`]. Returns its path.
    pub fn web_config(&self, client_auth: &str) -> PathBuf {
        let hash = bcrypt::hash(PASSWORD, 4).unwrap();
        let ca = match client_auth {
            "NoClientCert" => String::new(),
            _ => "  client_ca_file: ca.pem\n".to_string(),
        };
        let text = format!(
            "tls_server_config:
  cert_file: server.pem
  key_file: server.key
  client_auth_type: {client_auth}
{ca}http_server_config:
  headers:
    X-Frame-Options: deny
basic_auth_users:
  alice: '{hash}'
"
        );
        let path = self.path("web.yml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What an HTTPS request got: the raw answer, and the server's leaf
/// certificate.
pub struct Answer {
    pub head: String,
    pub body: String,
    pub server_cert: Vec<u8>,
}

impl Answer {
    pub fn status(&self) -> u16 {
        (self.head.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `GET path` over TLS to `addr` (`127.0.0.1:PORT`), trusting `ca`, with a
/// Basic `user:password` when given and the client certificate `client`
/// (`NAME` of `NAME.pem`/`NAME.key` in `pki`) when given.
pub fn get(
    pki: &Pki,
    addr: &str,
    path: &str,
    basic: Option<(&str, &str)>,
    client: Option<&str>,
) -> std::io::Result<Answer> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.path("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let chain = CertificateDer::pem_file_iter(pki.path(&format!("{name}.pem")))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{name}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let auth = match basic {
        Some((user, password)) => {
            use base64::Engine as _;
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            format!("Authorization: Basic {encoded}\r\n")
        }
        None => String::new(),
    };
    let sent = write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    );
    let mut answer = Vec::new();
    if let Err(e) = sent {
        // A server that refused the handshake may have closed before the
        // request went out: its alert, if it is still to be read, says why.
        return Err(tls.read_to_end(&mut answer).err().unwrap_or(e));
    }
    match tls.read_to_end(&mut answer) {
        Ok(_) => {}
        // The server closes without close_notify after `Connection: close`.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => {}
        Err(e) => return Err(e),
    }
    let server_cert = (tls.conn.peer_certificates())
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    Ok(Answer {
        head: head.to_string(),
        body: body.to_string(),
        server_cert,
    })
}

/// The DER of the first certificate of a PEM file.
pub fn der_of(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}
