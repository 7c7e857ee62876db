//! A reader of the `.zip` a client uploads as a skill bundle: untrusted input, read with every
//! limit checked before a byte is inflated. Only what a skill bundle needs is accepted: stored or
//! deflated entries, no encryption, no ZIP64, no multi-disk archives, no symbolic links; each
//! entry's inflated size must be the one its header declares (and at most the per-file limit),
//! and its CRC must match.
//!
//! Errors are messages for a `400 invalid` (they name the entry, never echo file content).

use sealpod_resources::revision::{MAX_SKILL_BUNDLE_BYTES, MAX_SKILL_FILE_BYTES, MAX_SKILL_FILES};

/// Largest `.zip` accepted, bytes.
pub(crate) const MAX_ZIP_BYTES: usize = 1024 * 1024;
/// Most entries (files and folders) a `.zip` may list.
const MAX_ENTRIES: usize = 2 * MAX_SKILL_FILES;

const EOCD_SIGNATURE: u32 = 0x0605_4b50;
const CENTRAL_SIGNATURE: u32 = 0x0201_4b50;
const LOCAL_SIGNATURE: u32 = 0x0403_4b50;
const EOCD_LEN: usize = 22;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
/// `version made by` host of Unix: its external attributes carry the file mode.
const HOST_UNIX: u8 = 3;
const S_IFMT: u32 = 0o170_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;

/// One file of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The name as stored (checked later, with the bundle's path rules).
    pub path: String,
    /// Whether any execute bit is set (Unix archives only).
    pub executable: bool,
    /// The inflated content.
    pub content: Vec<u8>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

const TRUNCATED: &str = "the zip is truncated or malformed";

/// The files of a `.zip` (folders left out).
pub(crate) fn read(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    if bytes.len() > MAX_ZIP_BYTES {
        return Err(format!("the zip is larger than {MAX_ZIP_BYTES} bytes"));
    }
    let eocd = find_eocd(bytes).ok_or("not a zip file (no end of central directory)")?;
    let disk = u16_at(bytes, eocd + 4).ok_or(TRUNCATED)?;
    let cd_disk = u16_at(bytes, eocd + 6).ok_or(TRUNCATED)?;
    let count = usize::from(u16_at(bytes, eocd + 10).ok_or(TRUNCATED)?);
    let cd_size = u32_at(bytes, eocd + 12).ok_or(TRUNCATED)?;
    let cd_offset = u32_at(bytes, eocd + 16).ok_or(TRUNCATED)?;
    if disk != 0 || cd_disk != 0 {
        return Err("multi-disk zips are not accepted".into());
    }
    if count == 0xffff || cd_size == u32::MAX || cd_offset == u32::MAX {
        return Err("ZIP64 archives are not accepted".into());
    }
    if count > MAX_ENTRIES {
        return Err(format!(
            "the zip lists {count} entries; at most {MAX_ENTRIES}"
        ));
    }
    let mut at = cd_offset as usize;
    let mut files = Vec::new();
    let mut total: u64 = 0;
    for _ in 0..count {
        if u32_at(bytes, at) != Some(CENTRAL_SIGNATURE) {
            return Err(TRUNCATED.into());
        }
        let made_by_host = bytes.get(at + 5).copied().ok_or(TRUNCATED)?;
        let flags = u16_at(bytes, at + 8).ok_or(TRUNCATED)?;
        let method = u16_at(bytes, at + 10).ok_or(TRUNCATED)?;
        let crc = u32_at(bytes, at + 16).ok_or(TRUNCATED)?;
        let packed = u32_at(bytes, at + 20).ok_or(TRUNCATED)?;
        let size = u32_at(bytes, at + 24).ok_or(TRUNCATED)?;
        let name_len = usize::from(u16_at(bytes, at + 28).ok_or(TRUNCATED)?);
        let extra_len = usize::from(u16_at(bytes, at + 30).ok_or(TRUNCATED)?);
        let comment_len = usize::from(u16_at(bytes, at + 32).ok_or(TRUNCATED)?);
        let external = u32_at(bytes, at + 38).ok_or(TRUNCATED)?;
        let local = u32_at(bytes, at + 42).ok_or(TRUNCATED)?;
        let raw_name = bytes
            .get(at + CENTRAL_LEN..at + CENTRAL_LEN + name_len)
            .ok_or(TRUNCATED)?;
        at += CENTRAL_LEN + name_len + extra_len + comment_len;
        let name = std::str::from_utf8(raw_name)
            .map_err(|_| "an entry's name is not UTF-8".to_owned())?
            .to_owned();
        let shown = printable(&name);
        if packed == u32::MAX || size == u32::MAX || local == u32::MAX {
            return Err(format!("entry `{shown}`: ZIP64 entries are not accepted"));
        }
        if flags & 1 != 0 {
            return Err(format!("entry `{shown}` is encrypted"));
        }
        let unix_mode = (made_by_host == HOST_UNIX).then_some(external >> 16);
        let kind = unix_mode.map_or(0, |m| m & S_IFMT);
        if kind == S_IFLNK {
            return Err(format!("entry `{shown}` is a symbolic link"));
        }
        if name.ends_with('/') || kind == S_IFDIR {
            if size != 0 {
                return Err(format!("folder entry `{shown}` has content"));
            }
            continue;
        }
        if kind != 0 && kind != S_IFREG {
            return Err(format!("entry `{shown}` is not a regular file"));
        }
        if u64::from(size) > MAX_SKILL_FILE_BYTES {
            return Err(format!(
                "entry `{shown}` is {size} bytes; a skill file may be at most {MAX_SKILL_FILE_BYTES}"
            ));
        }
        total += u64::from(size);
        if total > MAX_SKILL_BUNDLE_BYTES {
            return Err(format!(
                "the files add up to more than {MAX_SKILL_BUNDLE_BYTES} bytes"
            ));
        }
        let content = entry_data(
            bytes,
            local as usize,
            packed as usize,
            method,
            size as usize,
        )
        .map_err(|e| format!("entry `{shown}`: {e}"))?;
        if crc32(&content) != crc {
            return Err(format!("entry `{shown}`: CRC mismatch"));
        }
        files.push(Entry {
            path: name,
            executable: unix_mode.is_some_and(|m| m & 0o111 != 0),
            content,
        });
        if files.len() > MAX_SKILL_FILES {
            return Err(format!("the zip holds more than {MAX_SKILL_FILES} files"));
        }
    }
    Ok(files)
}

/// The offset of the end-of-central-directory record (the last one, searched within the
/// largest comment a zip may carry).
fn find_eocd(bytes: &[u8]) -> Option<usize> {
    let last = bytes.len().checked_sub(EOCD_LEN)?;
    let first = last.saturating_sub(usize::from(u16::MAX));
    (first..=last)
        .rev()
        .find(|&at| u32_at(bytes, at) == Some(EOCD_SIGNATURE))
}

/// The inflated data of the entry whose local header is at `local`.
fn entry_data(
    bytes: &[u8],
    local: usize,
    packed: usize,
    method: u16,
    size: usize,
) -> Result<Vec<u8>, String> {
    if u32_at(bytes, local) != Some(LOCAL_SIGNATURE) {
        return Err("its local header is missing".into());
    }
    let name_len = usize::from(u16_at(bytes, local + 26).ok_or(TRUNCATED)?);
    let extra_len = usize::from(u16_at(bytes, local + 28).ok_or(TRUNCATED)?);
    let start = local + LOCAL_LEN + name_len + extra_len;
    let data = bytes
        .get(start..start.checked_add(packed).ok_or(TRUNCATED)?)
        .ok_or(TRUNCATED)?;
    let content = match method {
        0 => data.to_vec(),
        8 => miniz_oxide::inflate::decompress_to_vec_with_limit(data, size)
            .map_err(|_| "its data does not inflate to the size its header declares".to_owned())?,
        other => return Err(format!("compression method {other} is not accepted")),
    };
    if content.len() != size {
        return Err("its data is not the size its header declares".into());
    }
    Ok(content)
}

/// CRC-32 (ISO-HDLC, as zip uses).
fn crc32(data: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(data)
}

/// A name as an error may show it: control characters escaped, at most 100 characters.
pub(crate) fn printable(name: &str) -> String {
    name.chars()
        .take(100)
        .flat_map(char::escape_debug)
        .collect()
}
