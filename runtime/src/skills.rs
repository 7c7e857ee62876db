//! The pinned revision's skills, as the model is offered them: a list in the system prompt
//! (each skill's name, the description of its `SKILL.md` and where that file is), the files
//! themselves read with the tools on demand. The skills are read-only files under
//! `SEALPOD_SKILLS_DIR` (`/skills`), one folder per skill; the list is read once, when the
//! runtime starts (a session's skills never change).

use std::path::Path;

use sealpod_resources::revision::{SKILL_FILE, front_matter_description};

/// The system prompt section listing the skills under `dir`; `None` when there are none.
pub fn section(dir: &Path) -> Option<String> {
    let mut skills: Vec<(String, Option<String>)> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let content = std::fs::read(entry.path().join(SKILL_FILE)).ok()?;
            Some((name, front_matter_description(&content)))
        })
        .collect();
    if skills.is_empty() {
        return None;
    }
    skills.sort();
    let mut text = format!(
        "## Skills\n\nSkills are folders of instructions, scripts and resources, read-only under \
         {dir}. When a task matches a skill's description, read its {SKILL_FILE} first (with \
         read_file) and follow it; read the skill's other files only as it directs.\n",
        dir = dir.display()
    );
    for (name, description) in skills {
        let path = dir.join(&name).join(SKILL_FILE);
        text.push_str(&format!(
            "\n- {name}: {} ({})",
            description.as_deref().unwrap_or("(no description)"),
            path.display()
        ));
    }
    Some(text)
}

/// The system prompt: the agent's prompt, then the skills section when there is one.
pub fn system_prompt(prompt: &str, section: Option<&str>) -> String {
    match section {
        Some(section) if prompt.is_empty() => section.to_owned(),
        Some(section) => format!("{prompt}\n\n{section}"),
        None => prompt.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skills_are_listed_with_their_descriptions_in_name_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, md) in [
            ("pdf", "---\ndescription: Reads PDFs.\n---\n# PDF\n"),
            ("csv", "no front matter"),
        ] {
            std::fs::create_dir(dir.path().join(name)).expect("mkdir");
            std::fs::write(dir.path().join(name).join(SKILL_FILE), md).expect("write");
        }
        // A folder without SKILL.md is not a skill.
        std::fs::create_dir(dir.path().join("notes")).expect("mkdir");
        let text = section(dir.path()).expect("skills");
        let csv = text.find("- csv: (no description)").expect("csv listed");
        let pdf = text.find("- pdf: Reads PDFs.").expect("pdf listed");
        assert!(csv < pdf, "{text}");
        assert!(!text.contains("notes"), "{text}");
        assert!(text.contains(&dir.path().join("pdf/SKILL.md").display().to_string()));
        assert_eq!(
            system_prompt("Be brief.", Some(&text)),
            format!("Be brief.\n\n{text}")
        );
        assert_eq!(system_prompt("Be brief.", None), "Be brief.");
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(section(empty.path()), None);
        assert_eq!(section(&empty.path().join("missing")), None);
    }
}
