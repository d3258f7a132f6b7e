//! A record as the stores keep it: its JSON, gzip-compressed (a tenth of the JSON for
//! the example release, and far less than the decoded record). What a record may
//! decode to is bounded ([`MAX_DECODED`]): a Secret of a megabyte can hold a gzip
//! stream that inflates a thousandfold, and every command reads every record.

use crate::release::ReleaseRecord;
use flate2::{read::GzDecoder, write::GzEncoder, Compression};
use std::io::{Read, Write};

/// The most a record's JSON may take, decoded: far above any real record (the example
/// release's is some tens of kilobytes; a chart of a thousand objects some megabytes),
/// far below what a gzip bomb of a Secret's size inflates to.
pub(crate) const MAX_DECODED: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub(super) enum CodecError {
    #[error("decodes to more than {} MiB, the most a record may take", MAX_DECODED / (1024 * 1024))]
    TooLarge,
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
    // What could not be read back is not written.
    if json.len() > MAX_DECODED {
        return Err(CodecError::TooLarge);
    }
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&json)
        .and_then(|_| gz.finish())
        .map_err(CodecError::Compress)
}

pub(super) fn decompress(bytes: &[u8]) -> Result<ReleaseRecord, CodecError> {
    let mut json = Vec::new();
    GzDecoder::new(bytes)
        .take(MAX_DECODED as u64 + 1)
        .read_to_end(&mut json)
        .map_err(CodecError::NotGzip)?;
    if json.len() > MAX_DECODED {
        return Err(CodecError::TooLarge);
    }
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

    #[test]
    fn a_gzip_bomb_is_refused_past_the_bound_without_inflating_it_whole() {
        let bytes = crate::storage::tests_support::gzip_bomb();
        assert!(bytes.len() < 1024 * 1024, "{}", bytes.len());
        let err = decompress(&bytes).unwrap_err();
        assert!(matches!(err, CodecError::TooLarge), "{err}");
        assert_eq!(
            err.to_string(),
            "decodes to more than 64 MiB, the most a record may take"
        );
        // Within the bound, the same stream is only not a record.
        assert!(matches!(
            decompress(&crate::storage::tests_support::gzip(&[0; 1024])),
            Err(CodecError::NotRecord(_))
        ));
    }

    #[test]
    fn a_record_with_a_status_this_version_does_not_know_is_not_a_record() {
        let mut json = serde_json::to_value(record(2, "d2", Status::Deployed)).unwrap();
        json["status"] = "pending-upgrade".into();
        let err = decompress(&crate::storage::tests_support::gzip(
            json.to_string().as_bytes(),
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("is not a release record: unknown variant `pending-upgrade`"),
            "{err}"
        );
    }
}
