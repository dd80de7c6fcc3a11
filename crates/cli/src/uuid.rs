//! ClientRequestTokens as Secrets Manager makes them: random (version 4) UUIDs, from the operating
//! system's CSPRNG.

use crate::exit::CliError;

pub fn new_v4() -> Result<String, CliError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|err| CliError::internal(format!("the operating system's random source failed: {err}")))?;
    Ok(format_v4(bytes))
}

fn format_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_version_4_uuids_and_differ() {
        assert_eq!(format_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(format_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        let (a, b) = (new_v4().unwrap(), new_v4().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
