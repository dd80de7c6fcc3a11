//! Random values for the environment: admin passwords and identifiers. Drawn from the operating
//! system's CSPRNG so that two servers started at the same instant never share a password.

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Letters and digits only: safe inside SQL string literals, connection strings and shell words
/// without any quoting, which keeps the fixtures free of escaping bugs.
pub fn alphanumeric(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    fill(&mut bytes);
    // 62 does not divide 256; the tiny bias is irrelevant for throwaway test passwords.
    bytes.iter().map(|b| ALPHANUMERIC[*b as usize % ALPHANUMERIC.len()] as char).collect()
}

pub fn hex(len_bytes: usize) -> String {
    let mut bytes = vec![0u8; len_bytes];
    fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random (version 4) UUID, the shape of a Lambda request id.
pub fn uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

fn fill(bytes: &mut [u8]) {
    getrandom::fill(bytes).expect("the operating system's random source failed");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_alphanumeric_and_differ() {
        let (first, second) = (alphanumeric(24), alphanumeric(24));
        assert_eq!(first.len(), 24);
        assert!(first.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(first, second);
    }

    #[test]
    fn request_ids_are_version_4_uuids() {
        let id = uuid_v4();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(groups[2].starts_with('4'));
        assert!(matches!(groups[3].chars().next(), Some('8' | '9' | 'a' | 'b')));
    }
}
