//! Matching decoded wire paths (relative to `/v1`) to the path templates of the description.

/// Path parameters whose value may span several segments. Nomad routes `/v1/job/...` by stripping
/// known suffixes from the decoded path, so a job ID such as `parent/dispatch-1-ab12cd34` may
/// contain `/` (nomad-api.md §0 "IDs containing /").
const MULTI_SEGMENT_PARAMS: &[&str] = &["jobName"];

/// The path templates of the description.
pub(super) struct Routes {
    templates: Vec<Template>,
}

struct Template {
    text: String,
    segments: Vec<Segment>,
    literals: usize,
}

enum Segment {
    Literal(String),
    Param { multi_segment: bool },
}

impl Routes {
    /// Compiles `templates`, e.g. `/job/{jobName}/dispatch`.
    pub(super) fn new<'a>(templates: impl IntoIterator<Item = &'a String>) -> Self {
        let templates = templates
            .into_iter()
            .map(|text| {
                let segments: Vec<Segment> = text
                    .trim_start_matches('/')
                    .split('/')
                    .map(|segment| match segment.strip_prefix('{') {
                        Some(name) => Segment::Param {
                            multi_segment: MULTI_SEGMENT_PARAMS
                                .contains(&name.trim_end_matches('}')),
                        },
                        None => Segment::Literal(segment.to_string()),
                    })
                    .collect();
                let literals = segments
                    .iter()
                    .filter(|s| matches!(s, Segment::Literal(_)))
                    .count();
                Template {
                    text: text.clone(),
                    segments,
                    literals,
                }
            })
            .collect();
        Routes { templates }
    }

    /// The template matching the decoded `path` (e.g. `/job/a/dispatch-1-x/allocations`), preferring
    /// the one with the most literal segments.
    pub(super) fn find(&self, path: &str) -> Option<&str> {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut best: Option<&Template> = None;
        for template in &self.templates {
            if matches(&template.segments, &segments)
                && best.is_none_or(|b| template.literals > b.literals)
            {
                best = Some(template);
            }
        }
        best.map(|t| t.text.as_str())
    }
}

fn matches(template: &[Segment], path: &[&str]) -> bool {
    match template.split_first() {
        None => path.is_empty(),
        Some((Segment::Literal(literal), rest)) => {
            path.first() == Some(&literal.as_str()) && matches(rest, &path[1..])
        }
        Some((Segment::Param { multi_segment }, rest)) => {
            let longest = if *multi_segment {
                path.len()
            } else {
                path.len().min(1)
            };
            // Longest first, like Nomad's suffix stripping; every spanned segment must be non-empty.
            (1..=longest).rev().any(|taken| {
                path[..taken].iter().all(|s| !s.is_empty()) && matches(rest, &path[taken..])
            })
        }
    }
}
