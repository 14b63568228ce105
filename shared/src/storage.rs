//! Object storage through the `object_store` crate: `file:///dir` or
//! `s3://bucket/prefix` (S3 or MinIO, configured with the usual AWS_*
//! variables). Used for the storage service and for scratch.
//!
//! Keys are built by the pipeline from sanitised parts and parsed as
//! object_store paths, which refuse `..`, empty and absolute segments: no
//! key can leave its root whatever an archive's entry names were.

use std::{path::PathBuf, sync::Arc};

use futures::StreamExt;
use object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart,
    aws::{AmazonS3Builder, AmazonS3ConfigKey},
    local::LocalFileSystem,
    path::Path as Key,
    prefix::PrefixStore,
};
use tokio::io::AsyncWriteExt;

use crate::{
    error::{StageError, StageResult},
    settings::Secret,
};

/// Files up to this size are written in one request; larger ones stream in parts.
const SINGLE_PUT: u64 = 8 << 20;

#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    /// The root directory, for `file://` stores.
    local: Option<PathBuf>,
}

fn key(k: &str) -> StageResult<Key> {
    Key::parse(k).map_err(|_| StageError::permanent(format!("unsafe storage key {}", redact(k))))
}

/// A key as errors may show it: of its last segment (a document's name,
/// which may name the patient) only the leading document number is kept,
/// whatever the layout of the key.
fn redact(k: &str) -> String {
    let (dir, last) = k.rsplit_once('/').unwrap_or(("", k));
    let number: String = last.chars().take_while(char::is_ascii_digit).collect();
    let dir = if dir.is_empty() { String::new() } else { format!("{dir}/") };
    format!("{dir}{number}…")
}

/// The kind of the first I/O error in a chain (disk full, permission…).
fn io_kind(mut e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    loop {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        e = e.source()?;
    }
}

/// object_store's own messages repeat the path; only its kind is kept.
fn storage_error(doing: &str, k: &str, e: object_store::Error) -> StageError {
    let k = redact(k);
    match e {
        object_store::Error::NotFound { .. } => StageError::permanent(format!("{doing}: {k} does not exist")),
        other => {
            let kind = match &other {
                object_store::Error::Generic { store, source } => match io_kind(source.as_ref()) {
                    Some(kind) => format!("{store}: {kind}"),
                    None => format!("{store} error"),
                },
                object_store::Error::PermissionDenied { .. } => "permission denied".into(),
                object_store::Error::Unauthenticated { .. } => "not authenticated".into(),
                object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. } => {
                    "conflict".into()
                }
                _ => "storage error".into(),
            };
            StageError::transient(format!("{doing} {k}: {kind}"))
        }
    }
}

impl Store {
    /// Opens the store a URL names; `setting` names the setting in errors;
    /// `aws` are the `AWS_*` settings an `s3://` store takes.
    pub fn open(url: &str, setting: &str, aws: &[(String, Secret)]) -> anyhow::Result<Store> {
        let parsed = url::Url::parse(url).map_err(|e| anyhow::anyhow!("setting {setting}: {e}"))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed
                    .to_file_path()
                    .map_err(|_| anyhow::anyhow!("setting {setting}: {url} is not a local directory"))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| anyhow::anyhow!("setting {setting}: cannot create {}: {e}", dir.display()))?;
                let fs =
                    LocalFileSystem::new_with_prefix(&dir).map_err(|e| anyhow::anyhow!("setting {setting}: {e}"))?;
                Ok(Store { inner: Arc::new(fs), local: Some(dir) })
            }
            "s3" => {
                let mut builder = AmazonS3Builder::new();
                for (name, value) in aws {
                    // Names object_store does not know (AWS_PROFILE, say) are not ours to refuse.
                    if let Ok(key) = name.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                        builder = builder.with_config(key, value.expose());
                    }
                }
                let s3 = builder.with_url(url).build().map_err(|e| anyhow::anyhow!("setting {setting}: {e}"))?;
                let prefix = parsed.path().trim_matches('/');
                let inner: Arc<dyn ObjectStore> =
                    if prefix.is_empty() { Arc::new(s3) } else { Arc::new(PrefixStore::new(s3, prefix)) };
                Ok(Store { inner, local: None })
            }
            other => anyhow::bail!("setting {setting}: scheme {other} is not supported"),
        }
    }

    /// Where a key lives on local disk, for `file://` stores.
    pub fn local_path(&self, k: &str) -> Option<PathBuf> {
        let root = self.local.as_ref()?;
        key(k).ok().map(|p| p.parts().fold(root.clone(), |acc, part| acc.join(part.as_ref())))
    }

    /// Writes a local file under `k`, streaming large files in parts.
    pub async fn put_file(&self, k: &str, file: &std::path::Path) -> StageResult<u64> {
        let location = key(k)?;
        let size = tokio::fs::metadata(file).await?.len();
        if size <= SINGLE_PUT {
            let bytes = tokio::fs::read(file).await?;
            self.inner.put(&location, PutPayload::from(bytes)).await.map_err(|e| storage_error("writing", k, e))?;
            return Ok(size);
        }
        let upload = self.inner.put_multipart(&location).await.map_err(|e| storage_error("writing", k, e))?;
        let mut writer = WriteMultipart::new(upload);
        let mut reader = tokio::fs::File::open(file).await?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut reader, &mut buf).await?;
            if n == 0 {
                break;
            }
            writer.wait_for_capacity(4).await.map_err(|e| storage_error("writing", k, e))?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(|e| storage_error("writing", k, e))?;
        Ok(size)
    }

    /// [`Store::put_file`] for a file the caller no longer needs: renamed
    /// into place when this store is a local directory on the same file
    /// system (no bytes copied), written as `put_file` otherwise.
    pub async fn put_moved(&self, k: &str, file: &std::path::Path) -> StageResult<u64> {
        if let Some(dest) = self.local_path(k) {
            let size = tokio::fs::metadata(file).await?.len();
            if let Some(parent) = dest.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            // A rename replaces the name at once: a reader sees the old object or the new one.
            if tokio::fs::rename(file, &dest).await.is_ok() {
                return Ok(size);
            }
        }
        self.put_file(k, file).await
    }

    pub async fn put_bytes(&self, k: &str, bytes: Vec<u8>) -> StageResult {
        self.inner.put(&key(k)?, PutPayload::from(bytes)).await.map_err(|e| storage_error("writing", k, e))?;
        Ok(())
    }

    /// Reads `k` into a local file, streaming.
    pub async fn get_to_file(&self, k: &str, file: &std::path::Path) -> StageResult<u64> {
        let got = self.inner.get(&key(k)?).await.map_err(|e| storage_error("reading", k, e))?;
        let mut stream = got.into_stream();
        let mut out = tokio::fs::File::create(file).await?;
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| storage_error("reading", k, e))?;
            bytes += chunk.len() as u64;
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        Ok(bytes)
    }

    pub async fn get_bytes(&self, k: &str) -> StageResult<bytes::Bytes> {
        let got = self.inner.get(&key(k)?).await.map_err(|e| storage_error("reading", k, e))?;
        got.bytes().await.map_err(|e| storage_error("reading", k, e))
    }

    /// Copies `k` of this store to `to_key` of `to`, streaming; a plain file
    /// copy when both are local directories.
    pub async fn copy_to(&self, k: &str, to: &Store, to_key: &str) -> StageResult<u64> {
        if let (Some(from), Some(dest)) = (self.local_path(k), to.local_path(to_key)) {
            key(to_key)?;
            let parent = dest.parent().map(PathBuf::from).unwrap_or_default();
            tokio::fs::create_dir_all(&parent).await?;
            // Copy then rename: a reader never sees a half-written object.
            // On one file system a hard link is the copy: objects are never
            // changed in place (a put replaces the name), so the two names
            // may share the bytes, and deleting scratch leaves storage's.
            let staging = parent.join(format!(".{}.partial", uuid::Uuid::new_v4()));
            let copied = match tokio::fs::hard_link(&from, &staging).await {
                Ok(()) => tokio::fs::metadata(&staging).await.map(|m| m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(e),
                Err(_) => tokio::fs::copy(&from, &staging).await,
            };
            let bytes = match copied {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(StageError::permanent(format!("copying: {k} does not exist")));
                }
                Err(e) => return Err(e.into()),
            };
            tokio::fs::rename(&staging, &dest).await?;
            return Ok(bytes);
        }
        let scratch = tempfile::NamedTempFile::new()?;
        self.get_to_file(k, scratch.path()).await?;
        to.put_file(to_key, scratch.path()).await
    }

    pub async fn exists(&self, k: &str) -> StageResult<bool> {
        match self.inner.head(&key(k)?).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error("checking", k, e)),
        }
    }

    /// Deletes every object under `prefix` (best effort for cleanup).
    pub async fn delete_prefix(&self, prefix: &str) -> StageResult<usize> {
        let p = key(prefix)?;
        let mut listed = self.inner.list(Some(&p));
        let mut n = 0;
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(|e| storage_error("listing", prefix, e))?;
            match self.inner.delete(&meta.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => n += 1,
                Err(e) => return Err(storage_error("deleting", meta.location.as_ref(), e)),
            }
        }
        if let Some(dir) = self.local_path(prefix) {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_redacted_key_keeps_its_folders_and_document_number_only() {
        assert_eq!(redact("P1/run/pdf/0003-Smith_Alice_labs.pdf"), "P1/run/pdf/0003…");
        assert_eq!(redact("P1/run/originals/Smith Alice.txt"), "P1/run/originals/…");
        assert_eq!(redact("Alice"), "…");
    }
}
