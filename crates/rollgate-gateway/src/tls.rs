//! TLS to model servers behind `https://` endpoints (rustls): the system's
//! root certificates plus a service's own CA bundle, SNI and the checked
//! name from the endpoint's host (or the service's `server_name`), and for
//! mutual TLS a client certificate. A service's client configuration is
//! built when a routing is applied (its files read then) and shared by its
//! endpoints; connections over it are pooled like plain ones.

use crate::table::TableError;
use http::uri::Authority;
use rollgate_core::config::UpstreamTls;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;

/// How an endpoint's connections are secured.
pub struct TlsTarget {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
    pub handshake_timeout: Duration,
}

/// A service's TLS settings and the client configuration made of them.
#[derive(Clone)]
pub struct ServiceTls {
    pub settings: UpstreamTls,
    pub config: Arc<ClientConfig>,
}

impl ServiceTls {
    /// The client configuration for `settings`, reading its files now.
    pub fn new(service: &str, settings: &UpstreamTls) -> Result<ServiceTls, TableError> {
        let bad = |why: String| TableError::Tls { service: service.into(), why };
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are skipped: a service may trust only its own CA.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if let Some(path) = &settings.ca_file {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                .map_err(|e| bad(format!("cannot read the CA bundle {path}: {e}")))?;
            if certs.is_empty() {
                return Err(bad(format!("the CA bundle {path} holds no certificate")));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(format!("a certificate of {path} is not usable: {e}")))?;
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match (&settings.client_cert, &settings.client_key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|e| bad(format!("cannot read the client certificate {cert}: {e}")))?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| bad(format!("cannot read the client key {key}: {e}")))?;
                builder.with_client_auth_cert(chain, key).map_err(|e| bad(format!("the client certificate: {e}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        // Model servers are spoken to in HTTP/1.1 (see `upstream`).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServiceTls { settings: settings.clone(), config: Arc::new(config) })
    }

    /// How to secure connections to `authority`.
    pub fn target(
        &self,
        service: &str,
        authority: &Authority,
        handshake_timeout: Duration,
    ) -> Result<TlsTarget, TableError> {
        let host = self.settings.server_name.as_deref().unwrap_or_else(|| authority.host());
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = ServerName::try_from(host.to_string()).map_err(|e| TableError::Tls {
            service: service.into(),
            why: format!("`{host}` is not a server name: {e}"),
        })?;
        Ok(TlsTarget { connector: TlsConnector::from(self.config.clone()), server_name, handshake_timeout })
    }
}
