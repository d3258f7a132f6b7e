//! A record as the stores keep it: its JSON, gzip-compressed (a tenth of the JSON for
//! the example release, and far less than the decoded record).

use crate::release::ReleaseRecord;
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
pub(super) enum CodecError {
    #[error("cannot encode: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("cannot compress: {0}")]
    Compress(#[source] std::io::Error),
    #[error("is not gzip: {0}")]
    NotGzip(#[source] std::io::Error),
    #[error("is not a release record: {0}")]
    NotRecord(#[source] serde_json::Error),
}

pub(super) fn compress(record: &ReleaseRecord) -> Result<Vec<u8>, CodecError> {
    let json = serde_json::to_vec(record).map_err(CodecError::Encode)?;
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&json)
        .and_then(|_| gz.finish())
        .map_err(CodecError::Compress)
}

pub(super) fn decompress(bytes: &[u8]) -> Result<ReleaseRecord, CodecError> {
    let mut json = Vec::new();
    GzDecoder::new(bytes)
        .read_to_end(&mut json)
        .map_err(CodecError::NotGzip)?;
    serde_json::from_slice(&json).map_err(CodecError::NotRecord)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::release::tests_support::record;
    use crate::release::Status;

    #[test]
    fn a_record_comes_back_as_it_went_in() {
        let mut r = record(3, "d3", Status::Deployed);
        r.manifest = vec![serde_json::json!({"kind": "ConfigMap", "data": {"k": "v"}})];
        let bytes = compress(&r).unwrap();
        assert_eq!(decompress(&bytes).unwrap(), r);
        assert!(matches!(decompress(b"{}"), Err(CodecError::NotGzip(_))));
    }
}
