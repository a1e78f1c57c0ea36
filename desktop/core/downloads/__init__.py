"""Resumable, sha256-checked downloads: `DownloadManager` (`manager`) over a persisted queue
(`store`, `queue`), one attempt at one file (`fetch`, `direct`), retries (`attempts`) and
progress values (`progress`)."""
