//! TLS for a listener, with rustls on the ring provider (which builds with
//! a C compiler alone). The server configuration is built whole from the
//! web config's files and swapped at a SIGHUP: a connection takes the one
//! current when it arrives, so a rotated certificate is served from the next
//! connection on and a bad file changes nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::web_config::{ClientAuth, TlsSettings, TlsVersion};

/// The TLS side of a listener: the configuration new connections get.
#[derive(Debug)]
pub struct Tls {
    current: ArcSwap<ServerConfig>,
}

impl Tls {
    pub fn new(settings: &TlsSettings) -> Result<Tls> {
        Ok(Tls {
            current: ArcSwap::new(server_config(settings)?),
        })
    }

    /// Serves `settings` from the next connection on; on an error (an
    /// unreadable certificate, say) the current configuration stays.
    pub fn replace(&self, settings: &TlsSettings) -> Result<()> {
        self.current.store(server_config(settings)?);
        Ok(())
    }

    /// The TLS handshake of one connection, bounded by `timeout`.
    pub async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, Handshake> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.current.load_full());
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(Handshake::Failed(e)),
            Err(_) => Err(Handshake::TimedOut),
        }
    }
}

/// Why a connection got no TLS session.
#[derive(Debug)]
pub enum Handshake {
    Failed(std::io::Error),
    TimedOut,
}

impl Handshake {
    /// The `reason` of `promwasm_http_rejected_total`: a client that left
    /// before a handshake began (a port probe) did not fail one.
    pub fn reason(&self) -> &'static str {
        match self {
            Handshake::Failed(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                "connection_error"
            }
            Handshake::Failed(_) => "tls_handshake",
            Handshake::TimedOut => "tls_handshake_timeout",
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration from the files `settings` names, each read now;
/// errors name the file.
fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>> {
    let provider = provider();
    let versions: &[&'static rustls::SupportedProtocolVersion] =
        match (settings.min_version, settings.max_version) {
            (TlsVersion::Tls12, TlsVersion::Tls13) => {
                &[&rustls::version::TLS13, &rustls::version::TLS12]
            }
            (TlsVersion::Tls12, TlsVersion::Tls12) => &[&rustls::version::TLS12],
            _ => &[&rustls::version::TLS13],
        };
    let chain = certificates(&settings.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&settings.key_file).with_context(|| {
        format!(
            "cannot read a private key from {}",
            settings.key_file.display()
        )
    })?;
    let verifier = match (settings.client_auth, &settings.client_ca_file) {
        (ClientAuth::None, _) => WebPkiClientVerifier::no_client_auth(),
        (_, None) => {
            anyhow::bail!("client certificates are verified, but no client_ca_file is given")
        }
        (auth, Some(ca_file)) => {
            let mut roots = RootCertStore::empty();
            let (added, _) = roots.add_parsable_certificates(certificates(ca_file)?);
            anyhow::ensure!(
                added > 0,
                "{} holds no usable CA certificate",
                ca_file.display()
            );
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = match auth {
                ClientAuth::VerifyIfGiven => builder.allow_unauthenticated(),
                _ => builder,
            };
            builder
                .build()
                .with_context(|| format!("client CAs of {}", ca_file.display()))?
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .with_context(|| {
            format!(
                "the key of {} does not go with the certificate of {}",
                settings.key_file.display(),
                settings.cert_file.display()
            )
        })?;
    // promwasm serves HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The PEM certificates of `path`, at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let read = || format!("cannot read certificates from {}", path.display());
    let chain = CertificateDer::pem_file_iter(path)
        .with_context(read)?
        .collect::<Result<Vec<_>, _>>()
        .with_context(read)?;
    anyhow::ensure!(
        !chain.is_empty(),
        "{} holds no PEM certificate",
        path.display()
    );
    Ok(chain)
}
