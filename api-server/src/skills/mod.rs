//! Skill bundles: the files a deployment (inline `skills`) or `PUT /v3/agents/{id}/skills` (a
//! `.zip`) gives an agent, checked as untrusted input, summarised, and kept in an immutable
//! ConfigMap named by their digest, which the sandbox mounts read-only at `/skills`.
//!
//! A bundle is one folder per skill, each with a `SKILL.md` whose front matter's `description`
//! says what the skill is for (the runtime lists it in the system prompt). Limits
//! (`docs/revisions.md`, "Skills"): at most [`MAX_SKILL_FILES`] files, each at most
//! [`MAX_SKILL_FILE_BYTES`], [`MAX_SKILL_BUNDLE_BYTES`] in all, paths of at most
//! [`MAX_SKILL_PATH_LEN`] bytes; a `.zip` of at most [`zip::MAX_ZIP_BYTES`].

pub(crate) mod zip;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};
use sealpod_resources::Agent;
use sealpod_resources::labels;
use sealpod_resources::revision::{
    MAX_SKILL_BUNDLE_BYTES, MAX_SKILL_FILE_BYTES, MAX_SKILL_FILES, MAX_SKILL_PATH_LEN, SKILL_FILE,
    SkillBundle, SkillFile, SkillSummary, bundle_digest, front_matter_description,
    skills_config_map_name,
};
use serde::Deserialize;
use serde_json::Value;

/// [`labels::COMPONENT_LABEL`] of a skill bundle's ConfigMap.
pub(crate) const COMPONENT_SKILLS: &str = "skills";
/// Mode of a plain skill file in the sandbox.
const READ_ONLY: u32 = 0o444;
/// Mode of an executable skill file (a script) in the sandbox.
const READ_EXECUTE: u32 = 0o555;

/// One checked file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BundleFile {
    /// Relative path, `/`-separated.
    pub path: String,
    /// [`READ_ONLY`] or [`READ_EXECUTE`].
    pub mode: u32,
    /// Content.
    pub content: Vec<u8>,
}

/// A checked skill bundle (files in path order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bundle {
    files: Vec<BundleFile>,
}

/// A file of an inline deployment's `skills` (`InlineSkillFile` of the SDK).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InlineFile {
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub mode: Option<Value>,
}

impl Bundle {
    /// Checks files as a bundle: the limits, the path rules (relative, no `.`/`..`/empty
    /// segment, no backslash or control character, inside a skill folder, unique) and a
    /// `SKILL.md` in every folder. The error is a message for `400 invalid`.
    pub(crate) fn new(mut files: Vec<BundleFile>) -> Result<Bundle, String> {
        if files.len() > MAX_SKILL_FILES {
            return Err(format!(
                "{} files; a skill bundle may hold at most {MAX_SKILL_FILES}",
                files.len()
            ));
        }
        let mut total = 0u64;
        let mut seen = BTreeSet::new();
        let mut folders = BTreeSet::new();
        for file in &files {
            check_path(&file.path)?;
            let shown = zip::printable(&file.path);
            let size = file.content.len() as u64;
            if size > MAX_SKILL_FILE_BYTES {
                return Err(format!(
                    "`{shown}` is {size} bytes; a skill file may be at most {MAX_SKILL_FILE_BYTES}"
                ));
            }
            total += size;
            if !seen.insert(file.path.as_str()) {
                return Err(format!("`{shown}` appears twice"));
            }
            if let Some((folder, _)) = file.path.split_once('/') {
                folders.insert(folder);
            }
        }
        if total > MAX_SKILL_BUNDLE_BYTES {
            return Err(format!(
                "the files add up to {total} bytes; a skill bundle may hold at most {MAX_SKILL_BUNDLE_BYTES}"
            ));
        }
        // A file and a folder of the same path cannot both be written.
        for path in &seen {
            let mut prefix = String::new();
            for segment in path.split('/') {
                if seen.contains(prefix.trim_end_matches('/')) && !prefix.is_empty() {
                    return Err(format!(
                        "`{}` is both a file and a folder",
                        zip::printable(prefix.trim_end_matches('/'))
                    ));
                }
                prefix.push_str(segment);
                prefix.push('/');
            }
        }
        for folder in &folders {
            if !seen.contains(format!("{folder}/{SKILL_FILE}").as_str()) {
                return Err(format!(
                    "skill folder `{}` has no {SKILL_FILE}",
                    zip::printable(folder)
                ));
            }
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Bundle { files })
    }

    /// The bundle of an uploaded `.zip`.
    pub(crate) fn from_zip(bytes: &[u8]) -> Result<Bundle, String> {
        let entries = zip::read(bytes)?;
        if entries.is_empty() {
            return Err("the zip holds no file (DELETE removes every skill)".into());
        }
        Bundle::new(
            entries
                .into_iter()
                .map(|e| BundleFile {
                    path: e.path,
                    mode: if e.executable {
                        READ_EXECUTE
                    } else {
                        READ_ONLY
                    },
                    content: e.content,
                })
                .collect(),
        )
    }

    /// The bundle of an inline deployment's `skills`.
    pub(crate) fn from_inline(files: Vec<InlineFile>) -> Result<Bundle, String> {
        let mut checked = Vec::with_capacity(files.len());
        for (i, file) in files.into_iter().enumerate() {
            let mode = match &file.mode {
                None | Some(Value::Null) => READ_ONLY,
                Some(mode) => mode_bits(mode).ok_or_else(|| {
                    format!("skills[{i}].mode must be an octal mode such as 0644")
                })?,
            };
            checked.push(BundleFile {
                path: file.path,
                mode: if mode & 0o111 != 0 {
                    READ_EXECUTE
                } else {
                    READ_ONLY
                },
                content: file.content.into_bytes(),
            });
        }
        Bundle::new(checked)
    }

    /// Whether the bundle has no file.
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The bundle's digest (see [`bundle_digest`]).
    pub(crate) fn digest(&self) -> String {
        bundle_digest(
            self.files
                .iter()
                .map(|f| (f.path.as_str(), f.mode, f.content.as_slice())),
        )
    }

    /// What a revision records of the bundle of `agent` (an Agent object name).
    pub(crate) fn summary(&self, agent: &str) -> SkillBundle {
        let digest = self.digest();
        SkillBundle {
            config_map: skills_config_map_name(agent, &digest),
            digest,
            file_count: u32::try_from(self.files.len()).unwrap_or(u32::MAX),
            files: self
                .files
                .iter()
                .enumerate()
                .map(|(i, f)| SkillFile {
                    key: format!("f{i}"),
                    path: f.path.clone(),
                    mode: f.mode,
                    size: f.content.len() as u64,
                })
                .collect(),
            skills: self
                .files
                .iter()
                .filter_map(|f| {
                    let (folder, rest) = f.path.split_once('/')?;
                    (rest == SKILL_FILE).then(|| SkillSummary {
                        name: folder.to_owned(),
                        description: front_matter_description(&f.content),
                    })
                })
                .collect(),
        }
    }

    /// The immutable ConfigMap holding the files of `agent`'s bundle (`summary`, what
    /// [`Bundle::summary`] answered), owned by the agent.
    pub(crate) fn config_map(&self, agent: &Agent, summary: &SkillBundle) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(summary.config_map.clone()),
                namespace: agent.namespace(),
                owner_references: agent.controller_owner_ref(&()).map(|o| vec![o]),
                labels: Some(BTreeMap::from([
                    (labels::AGENT_LABEL.to_owned(), agent.name_any()),
                    (
                        labels::COMPONENT_LABEL.to_owned(),
                        COMPONENT_SKILLS.to_owned(),
                    ),
                    (labels::PART_OF.to_owned(), labels::PART_OF_VALUE.to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            binary_data: Some(
                summary
                    .files
                    .iter()
                    .zip(&self.files)
                    .map(|(listed, file)| (listed.key.clone(), ByteString(file.content.clone())))
                    .collect(),
            ),
            immutable: Some(true),
            ..ConfigMap::default()
        }
    }
}

/// Checks one path of a bundle.
fn check_path(path: &str) -> Result<(), String> {
    let shown = zip::printable(path);
    if path.len() > MAX_SKILL_PATH_LEN {
        return Err(format!(
            "`{shown}`: a path may be at most {MAX_SKILL_PATH_LEN} bytes"
        ));
    }
    if path.starts_with('/') {
        return Err(format!("`{shown}` is an absolute path"));
    }
    if path.contains('\\') {
        return Err(format!("`{shown}` contains a backslash"));
    }
    if path.chars().any(char::is_control) {
        return Err(format!("`{shown}` contains a control character"));
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments.contains(&"..") {
        return Err(format!("`{shown}` leaves its folder (`..`)"));
    }
    if segments.iter().any(|s| s.is_empty() || *s == ".") {
        return Err(format!("`{shown}` has an empty or `.` segment"));
    }
    if segments.len() < 2 {
        return Err(format!(
            "`{shown}` is not in a skill folder (each skill is a folder with a {SKILL_FILE})"
        ));
    }
    Ok(())
}

/// Permission bits from an inline file's `mode`: a number (`493`) or an octal string (`"0755"`).
fn mode_bits(mode: &Value) -> Option<u32> {
    let bits = match mode {
        Value::Number(n) => u32::try_from(n.as_u64()?).ok()?,
        Value::String(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8).ok()?,
        _ => return None,
    };
    (bits <= 0o7777).then_some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One entry of a test archive.
    struct Raw<'a> {
        name: &'a str,
        content: &'a [u8],
        /// Unix mode (type and permissions); 0 for an archive from a non-Unix host.
        mode: u32,
        deflate: bool,
        /// The size the headers declare (the real one when `None`).
        declared: Option<u32>,
    }

    fn file<'a>(name: &'a str, content: &'a [u8]) -> Raw<'a> {
        Raw {
            name,
            content,
            mode: 0o100_644,
            deflate: true,
            declared: None,
        }
    }

    /// A zip archive, written as `zip` writes one (local headers, central directory, end).
    fn archive(entries: &[Raw<'_>]) -> Vec<u8> {
        let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
        let mut out = Vec::new();
        let mut central = Vec::new();
        for e in entries {
            let data = if e.deflate {
                miniz_oxide::deflate::compress_to_vec(e.content, 6)
            } else {
                e.content.to_vec()
            };
            let size = e.declared.unwrap_or(e.content.len() as u32);
            let method: u16 = if e.deflate { 8 } else { 0 };
            let offset = out.len() as u32;
            let mut common = Vec::new();
            common.extend_from_slice(&20u16.to_le_bytes()); // version needed
            common.extend_from_slice(&0u16.to_le_bytes()); // flags
            common.extend_from_slice(&method.to_le_bytes());
            common.extend_from_slice(&0u32.to_le_bytes()); // time, date
            common.extend_from_slice(&crc.checksum(e.content).to_le_bytes());
            common.extend_from_slice(&(data.len() as u32).to_le_bytes());
            common.extend_from_slice(&size.to_le_bytes());
            common.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            common.extend_from_slice(&0u16.to_le_bytes()); // extra
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&common);
            out.extend_from_slice(e.name.as_bytes());
            out.extend_from_slice(&data);
            central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            let host: u16 = if e.mode == 0 { 0 } else { 3 << 8 };
            central.extend_from_slice(&(host | 20).to_le_bytes()); // version made by
            central.extend_from_slice(&common);
            central.extend_from_slice(&0u16.to_le_bytes()); // comment
            central.extend_from_slice(&0u16.to_le_bytes()); // disk
            central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            central.extend_from_slice(&(e.mode << 16).to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(e.name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }

    fn refused(entries: &[Raw<'_>]) -> String {
        Bundle::from_zip(&archive(entries)).expect_err("refused")
    }

    const SKILL: &[u8] = b"---\ndescription: Reads PDFs.\n---\n# PDF\n";

    #[test]
    fn a_well_formed_bundle_is_read_summarised_and_keyed() {
        let script = Raw {
            mode: 0o100_755,
            deflate: false,
            ..file("pdf/scripts/extract.sh", b"#!/bin/sh\necho hi\n")
        };
        let bundle = Bundle::from_zip(&archive(&[
            Raw {
                mode: 0o040_755,
                ..file("pdf/", b"")
            },
            file("pdf/SKILL.md", SKILL),
            script,
            file("csv/SKILL.md", b"no front matter"),
        ]))
        .expect("bundle");
        let summary = bundle.summary("agt-a");
        let listed: Vec<(&str, u32, &str)> = summary
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.mode, f.key.as_str()))
            .collect();
        assert_eq!(
            listed,
            [
                ("csv/SKILL.md", 0o444, "f0"),
                ("pdf/SKILL.md", 0o444, "f1"),
                ("pdf/scripts/extract.sh", 0o555, "f2"),
            ]
        );
        assert_eq!(
            summary.skills[1].description.as_deref(),
            Some("Reads PDFs.")
        );
        assert_eq!(summary.skills[0].description, None);
        assert_eq!(summary.file_count, 3);
        assert!(summary.config_map.starts_with("agt-a-skills-"));
        // The same files inline make the same bundle.
        let inline = Bundle::from_inline(vec![
            InlineFile {
                path: "pdf/SKILL.md".into(),
                content: String::from_utf8(SKILL.to_vec()).expect("utf-8"),
                mode: None,
            },
            InlineFile {
                path: "pdf/scripts/extract.sh".into(),
                content: "#!/bin/sh\necho hi\n".into(),
                mode: Some(Value::from("0755")),
            },
            InlineFile {
                path: "csv/SKILL.md".into(),
                content: "no front matter".into(),
                mode: Some(Value::from(0o644)),
            },
        ])
        .expect("inline");
        assert_eq!(inline.digest(), bundle.digest());
        let agent = Agent::new(
            "agt-a",
            serde_json::from_value(serde_json::json!({"model": "anthropic/x", "prompt": ""}))
                .expect("spec"),
        );
        let map = bundle.config_map(&agent, &summary);
        assert_eq!(map.immutable, Some(true));
        assert_eq!(
            map.binary_data.expect("data")["f2"].0,
            b"#!/bin/sh\necho hi\n"
        );
    }

    #[test]
    fn unsafe_paths_are_refused_by_name() {
        for (path, why) in [
            ("../evil/SKILL.md", "leaves its folder"),
            ("pdf/../../etc/passwd", "leaves its folder"),
            ("/etc/pdf/SKILL.md", "absolute path"),
            ("pdf\\SKILL.md", "backslash"),
            ("pdf//SKILL.md", "empty or `.` segment"),
            ("pdf/./SKILL.md", "empty or `.` segment"),
            ("SKILL.md", "not in a skill folder"),
            ("pdf/\u{1b}[2J", "control character"),
        ] {
            let message = refused(&[file("pdf/SKILL.md", SKILL), file(path, b"x")]);
            assert!(message.contains(why), "{path}: {message}");
        }
        let long = format!("pdf/{}", "a".repeat(MAX_SKILL_PATH_LEN));
        assert!(refused(&[file("pdf/SKILL.md", SKILL), file(&long, b"x")]).contains("at most"));
    }

    #[test]
    fn links_duplicates_and_folders_without_skill_md_are_refused() {
        let link = Raw {
            mode: 0o120_777,
            ..file("pdf/passwd", b"/etc/passwd")
        };
        assert!(refused(&[file("pdf/SKILL.md", SKILL), link]).contains("symbolic link"));
        let twice = refused(&[file("pdf/SKILL.md", SKILL), file("pdf/SKILL.md", SKILL)]);
        assert!(twice.contains("appears twice"), "{twice}");
        let orphan = refused(&[file("pdf/SKILL.md", SKILL), file("docs/readme.md", b"x")]);
        assert!(orphan.contains("`docs` has no SKILL.md"), "{orphan}");
        let both = refused(&[
            file("pdf/SKILL.md", SKILL),
            file("pdf/a", b"x"),
            file("pdf/a/b", b"y"),
        ]);
        assert!(both.contains("both a file and a folder"), "{both}");
        assert!(Bundle::from_zip(&archive(&[])).is_err());
        assert!(Bundle::from_zip(b"not a zip at all").is_err());
    }

    #[test]
    fn zip_bombs_and_lies_are_refused_before_they_inflate() {
        // 10 MiB of zeros deflates to a few KiB: refused by its declared size.
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let bomb = refused(&[file("pdf/SKILL.md", SKILL), file("pdf/zeros", &zeros)]);
        assert!(bomb.contains("a skill file may be at most"), "{bomb}");
        // The same data declaring a small size: inflating stops at the declared size.
        let liar = Raw {
            declared: Some(100),
            ..file("pdf/zeros", &zeros)
        };
        let lie = refused(&[file("pdf/SKILL.md", SKILL), liar]);
        assert!(lie.contains("does not inflate to the size"), "{lie}");
        // Many files each within the limit, too many bytes together.
        let chunk = vec![b'a'; MAX_SKILL_FILE_BYTES as usize];
        let names: Vec<String> = (0..4).map(|i| format!("pdf/part{i}")).collect();
        let mut entries = vec![file("pdf/SKILL.md", SKILL)];
        entries.extend(names.iter().map(|n| file(n, &chunk)));
        assert!(refused(&entries).contains("add up to more than"));
        // Too many files.
        let names: Vec<String> = (0..=MAX_SKILL_FILES).map(|i| format!("pdf/f{i}")).collect();
        let mut entries = vec![file("pdf/SKILL.md", SKILL)];
        entries.extend(names.iter().map(|n| file(n, b"x")));
        assert!(refused(&entries).contains("more than"));
        // A CRC that does not match, and an archive over the size limit.
        let mut corrupt = archive(&[Raw {
            deflate: false,
            ..file("pdf/SKILL.md", SKILL)
        }]);
        let at = corrupt
            .windows(5)
            .position(|w| w == b"# PDF")
            .expect("content");
        corrupt[at] = b'!';
        assert!(
            Bundle::from_zip(&corrupt)
                .expect_err("crc")
                .contains("CRC mismatch")
        );
        let big = vec![0u8; zip::MAX_ZIP_BYTES + 1];
        assert!(
            Bundle::from_zip(&big)
                .expect_err("big")
                .contains("larger than")
        );
    }

    #[test]
    fn inline_modes_are_read_only_or_read_execute() {
        let bundle = |mode: Value| {
            Bundle::from_inline(vec![InlineFile {
                path: "s/SKILL.md".into(),
                content: "x".into(),
                mode: Some(mode),
            }])
        };
        assert_eq!(bundle(Value::from(0o777)).expect("ok").files[0].mode, 0o555);
        assert_eq!(bundle(Value::from("644")).expect("ok").files[0].mode, 0o444);
        assert!(bundle(Value::from("rwx")).is_err());
        assert!(bundle(Value::from(0o17777)).is_err());
    }
}
