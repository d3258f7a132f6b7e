//! The fleet's key material: a CA that the kubeconfig trusts, one serving certificate
//! for every apiserver (they all listen on 127.0.0.1), and the service-account signing key.

use crate::{FleetError, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

pub struct CertPaths {
    pub ca: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub sa_key: PathBuf,
    pub sa_pub: PathBuf,
}

impl CertPaths {
    pub fn new(state: &Path) -> Self {
        let dir = state.join("certs");
        CertPaths {
            ca: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
        }
    }
}

fn err(e: rcgen::Error) -> FleetError {
    FleetError::Certs(e.to_string())
}

/// Generates everything under `<state>/certs`.
pub fn generate(state: &Path) -> Result<CertPaths> {
    let paths = CertPaths::new(state);
    let dir = state.join("certs");
    std::fs::create_dir_all(&dir).map_err(|e| FleetError::io(&dir, e))?;

    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "flotilla-fleet CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = ca_params.self_signed(&ca_key).map_err(err)?;

    let key = KeyPair::generate().map_err(err)?;
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "flotilla-fleet apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca, &ca_key).map_err(err)?;

    let sa = KeyPair::generate().map_err(err)?;

    write(&paths.ca, &ca.pem())?;
    write(&paths.serving_cert, &cert.pem())?;
    write(&paths.serving_key, &key.serialize_pem())?;
    write(&paths.sa_key, &sa.serialize_pem())?;
    write(&paths.sa_pub, &sa.public_key_pem())?;
    Ok(paths)
}

pub(crate) fn write(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Keys and tokens: readable by the owner only.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| FleetError::io(path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| FleetError::io(path, e))
}
