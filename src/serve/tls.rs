//! TLS (RFC 8446, and 1.2 per RFC 5246 for older clients) through rustls
//! on the `ring` provider, passed explicitly so that no other provider in
//! the tree can make a builder panic:
//!
//! - the listeners: HTTPS (`[server.http] tls = true`, RFC 9110 §4.2.2)
//!   and RTSPS (`[server.rtsp] tls = true`, RFC 7826 §19.2: RTSP over TLS,
//!   the media interleaved in the same connection) with the certificate
//!   and key of `[server.tls]`, read again on every reload (a renewed
//!   certificate is taken without a restart);
//! - the clients (`eyrie ctl`, https webhooks): the system's trusted
//!   roots plus a PEM file of one's own;
//! - `eyrie cert`: a self-signed certificate for a first setup.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The `[server.tls]` table: the certificate of the HTTPS and RTSPS listeners.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsOptions {
    /// PEM file of the certificate chain, the server's own first.
    pub cert: PathBuf,
    /// PEM file of its private key (PKCS#8, PKCS#1 or SEC1); keep it 0600.
    pub key: PathBuf,
}

impl TlsOptions {
    /// Whether a certificate is configured.
    pub fn is_set(&self) -> bool {
        !self.cert.as_os_str().is_empty()
    }

    /// Checks the keys beyond their types: (key, message).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match (self.cert.as_os_str().is_empty(), self.key.as_os_str().is_empty()) {
            (false, true) => Err(("key", "is missing: `cert` needs its private key".into())),
            (true, false) => Err(("cert", "is missing: `key` needs its certificate".into())),
            _ => Ok(()),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SHA-256 fingerprint of a DER certificate, as `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The certificate the listeners present: read from `[server.tls]`, and
/// read again by [`ServerCertificate::reload`].
#[derive(Debug)]
pub struct ServerCertificate {
    options: TlsOptions,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCertificate {
    /// Reads the certificate and key; the error names the key and file.
    pub fn load(options: &TlsOptions) -> Result<Arc<ServerCertificate>, String> {
        let provider = provider();
        let current = RwLock::new(read(options, &provider)?);
        Ok(Arc::new(ServerCertificate {
            options: options.clone(),
            provider,
            current,
        }))
    }

    /// Reads the files again; on an error the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = read(&self.options, &self.provider)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }

    /// The SHA-256 fingerprint of the certificate in use.
    pub fn fingerprint(&self) -> String {
        let current = Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()));
        current.cert.first().map_or_else(String::new, |c| fingerprint(c))
    }

    /// An acceptor presenting this certificate, offering `alpn` (e.g. `http/1.1`).
    pub fn acceptor(self: &Arc<Self>, alpn: &[&[u8]]) -> Result<tokio_rustls::TlsAcceptor, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner())))
    }
}

fn read(options: &TlsOptions, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, String> {
    let (cert, key) = (&options.cert, &options.key);
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.tls.cert `{}`: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "server.tls.cert `{}`: no PEM certificate in it",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "server.tls.key `{}`: no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
            key.display()
        )
    })?;
    let certified = CertifiedKey::from_der(chain, private, provider).map_err(|e| {
        format!(
            "server.tls.key `{}` does not fit server.tls.cert `{}`: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(Arc::new(certified))
}

/// Where the system keeps its trusted roots (`SSL_CERT_FILE` first).
fn system_roots() -> Option<PathBuf> {
    std::env::var_os("SSL_CERT_FILE")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/cert.pem",
            ]
            .map(PathBuf::from),
        )
        .find(|p| p.is_file())
}

/// A client configuration trusting the system's roots and the PEM
/// certificates of `extra` (e.g. a server's self-signed one).
pub fn client_config(extra: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(system) = system_roots()
        && let Ok(certs) = CertificateDer::pem_file_iter(&system)
    {
        roots.add_parsable_certificates(certs.filter_map(Result::ok));
    }
    if let Some(extra) = extra {
        let certs = CertificateDer::pem_file_iter(extra)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("`{}`: {e}", extra.display()))?;
        if certs.is_empty() {
            return Err(format!("`{}`: no PEM certificate in it", extra.display()));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("`{}`: not a usable certificate: {e}", extra.display()))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A self-signed certificate and its key (`eyrie cert`).
pub struct SelfSigned {
    /// The certificate, PEM.
    pub cert: String,
    /// The private key (ECDSA P-256), PEM.
    pub key: String,
    /// The certificate's SHA-256 fingerprint.
    pub fingerprint: String,
}

/// A certificate for `names` (host names and IP addresses, the first also
/// its common name), valid from a day ago for `days` days.
pub fn self_signed(names: &[String], days: u32) -> Result<SelfSigned, String> {
    let first = names.first().ok_or("no name to make a certificate for")?;
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).map_err(|e| format!("`{}`: {e}", names.join(", ")))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, first.as_str());
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Eyrie (self-signed)");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok(SelfSigned {
        cert: cert.pem(),
        key: key.serialize_pem(),
        fingerprint: fingerprint(cert.der()),
    })
}

/// A connection a listener accepted: plain, or TLS once its handshake is done.
#[allow(clippy::large_enum_variant)]
pub enum Wire {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Wire {
    /// `stream` as it is (no `tls`), or after a TLS handshake that must end
    /// within `timeout` (a client that never finishes it holds nothing long).
    pub async fn accept(
        stream: TcpStream,
        tls: Option<&tokio_rustls::TlsAcceptor>,
        timeout: Duration,
    ) -> io::Result<Wire> {
        let Some(acceptor) = tls else {
            return Ok(Wire::Plain(stream));
        };
        match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
            Ok(done) => Ok(Wire::Tls(Box::new(done?))),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the TLS handshake did not end in time",
            )),
        }
    }
}

impl AsyncRead for Wire {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Wire::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Wire {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Wire::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Wire::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Wire::Plain(s) => s.is_write_vectored(),
            Wire::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_flush(cx),
            Wire::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Wire::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Wire::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_self_signed_pair_loads_and_a_wrong_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let one = self_signed(&["localhost".into(), "127.0.0.1".into()], 30).unwrap();
        let two = self_signed(&["example.test".into()], 30).unwrap();
        assert_ne!(one.fingerprint, two.fingerprint);
        let options = TlsOptions {
            cert: write(dir.path(), "cert.pem", &one.cert),
            key: write(dir.path(), "key.pem", &one.key),
        };
        let loaded = ServerCertificate::load(&options).unwrap();
        assert_eq!(loaded.fingerprint(), one.fingerprint);
        assert!(loaded.acceptor(&[b"http/1.1"]).is_ok());

        // A renewed pair is taken on reload; a broken one leaves the old in use.
        write(dir.path(), "cert.pem", &two.cert);
        write(dir.path(), "key.pem", &two.key);
        loaded.reload().unwrap();
        assert_eq!(loaded.fingerprint(), two.fingerprint);
        write(dir.path(), "key.pem", &one.key);
        let e = loaded.reload().unwrap_err();
        assert!(e.contains("server.tls.key") && e.contains("does not fit"), "{e}");
        assert_eq!(loaded.fingerprint(), two.fingerprint);

        for (cert, key, named) in [
            ("missing.pem", "key.pem", "server.tls.cert"),
            ("key.pem", "key.pem", "server.tls.cert"),
            ("cert.pem", "cert.pem", "server.tls.key"),
        ] {
            let options = TlsOptions {
                cert: dir.path().join(cert),
                key: dir.path().join(key),
            };
            let e = ServerCertificate::load(&options).unwrap_err();
            assert!(e.starts_with(named), "{cert}/{key}: {e}");
            assert!(!e.contains("BEGIN"), "no key material in errors: {e}");
        }
    }

    #[test]
    fn options_need_both_files() {
        let mut o = TlsOptions::default();
        assert!(o.check().is_ok() && !o.is_set());
        o.cert = "c.pem".into();
        assert_eq!(o.check().unwrap_err().0, "key");
        o.key = "k.pem".into();
        assert!(o.check().is_ok() && o.is_set());
        o.cert = PathBuf::new();
        assert_eq!(o.check().unwrap_err().0, "cert");
    }

    #[test]
    fn client_config_takes_an_extra_root_and_refuses_a_file_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let one = self_signed(&["localhost".into()], 30).unwrap();
        assert!(client_config(Some(&write(dir.path(), "ca.pem", &one.cert))).is_ok());
        let e = client_config(Some(&write(dir.path(), "none.pem", "hello"))).unwrap_err();
        assert!(e.contains("no PEM certificate"), "{e}");
        assert!(client_config(None).is_ok());
    }
}
