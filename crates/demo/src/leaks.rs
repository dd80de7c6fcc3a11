//! The last proof: no password the demo wrote or read, and no part of an IAM token, appears in
//! what it printed, in any function's answer (CloudFormation responses included) or in the
//! functions' logs.

use crate::connection_check::TOKEN_MARKERS;
use crate::world::World;
use dbcreds_core::SecretString;

pub fn check(world: &World, transcript: &str) -> Result<String, String> {
    let secrets: Vec<SecretString> = world.secrets.known();
    let outputs = world.logs.everything();
    let mut places: Vec<(&str, &str)> = vec![("the demo's own output", transcript)];
    places.extend(outputs.iter().map(|output| (output.origin.as_str(), output.text.as_str())));
    let mut problems = Vec::new();
    for (index, secret) in secrets.iter().enumerate() {
        // As is, and as it would look inside a JSON string.
        let escaped = serde_json::to_string(secret.expose()).unwrap_or_default();
        let forms = [secret.expose(), escaped.trim_matches('"')];
        for (origin, text) in &places {
            if forms.iter().any(|form| !form.is_empty() && text.contains(form)) {
                // Never the secret itself: which one (by its order) and where.
                problems.push(format!("secret #{} ({} chars) in {origin}", index + 1, secret.len()));
            }
        }
    }
    for output in outputs.iter().filter(|output| output.function == "connection-test") {
        for marker in TOKEN_MARKERS {
            if output.text.contains(marker) {
                problems.push(format!("part of an IAM token ({marker}) in {}", output.origin));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let bytes: usize = places.iter().map(|(_, text)| text.len()).sum();
    Ok(format!("{} passwords searched in the demo's output, {} answers and logs ({} KB)", secrets.len(), places.len() - 1, bytes / 1024))
}
