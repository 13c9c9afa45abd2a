//! rustls client setup for `syslog+tls`, `https` and `hec+https`: the CA that must have issued the
//! receiver's certificate (`--ship-ca`; there are no built-in roots, an
//! audit trail goes where the operator says), an optional client
//! certificate and key, and the name the certificate must carry (the URL's
//! host unless `--ship-server-name`). Crypto: rustls with the ring backend.

use std::{path::PathBuf, sync::Arc};

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};

use crate::ShipError;

#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}

fn certs(path: &PathBuf, what: &str) -> Result<Vec<CertificateDer<'static>>, ShipError> {
    let bad = |e: String| ShipError::Tls(format!("{what} {}: {e}", path.display()));
    let list: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if list.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    Ok(list)
}

pub fn client_config(f: &TlsFiles) -> Result<Arc<ClientConfig>, ShipError> {
    let ca = f.ca.as_ref().ok_or_else(|| {
        ShipError::Tls(
            "syslog+tls, https and hec+https need --ship-ca FILE (the CA of the receiver's \
             certificate; there are no built-in roots)"
                .into(),
        )
    })?;
    let mut roots = RootCertStore::empty();
    for c in certs(ca, "CA file")? {
        roots
            .add(c)
            .map_err(|e| ShipError::Tls(format!("CA file {}: {e}", ca.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ShipError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    let cfg = match (&f.cert, &f.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(c), Some(k)) => {
            let chain = certs(c, "client certificate")?;
            let key = PrivateKeyDer::from_pem_file(k)
                .map_err(|e| ShipError::Tls(format!("client key {}: {e}", k.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ShipError::Tls(format!("client certificate/key: {e}")))?
        }
        _ => {
            return Err(ShipError::Tls(
                "--ship-cert and --ship-key go together".into(),
            ));
        }
    };
    Ok(Arc::new(cfg))
}

pub fn server_name(name: &str) -> Result<ServerName<'static>, ShipError> {
    ServerName::try_from(name.to_string())
        .map_err(|e| ShipError::Tls(format!("`{name}` is not a valid server name: {e}")))
}
