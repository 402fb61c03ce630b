//! Who is calling: the principal an order belongs to.
//!
//! Several services of one reseller may share a stack (a web shop, a partner
//! API, a support tool). Each order belongs to the principal that placed it:
//! idempotency keys are scoped by it, and only it may read the order.

use sha2::{Digest, Sha256};
use std::fmt;

/// The longest principal kept; API Gateway's identities are far shorter.
pub const MAX_LEN: usize = 1024;

/// A caller, as a stable text: an IAM ARN, or `jwt|{issuer}|{claim}|{value}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal(String);

/// Why no principal could be taken from a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("the request carries no caller identity")]
    Missing,
    #[error("the token has no {0} claim")]
    MissingClaim(String),
    #[error("the caller identity is not usable: {0}")]
    Invalid(&'static str),
}

impl Principal {
    /// An IAM caller (SigV4). An assumed-role session is reduced to its role
    /// (`arn:aws:sts::A:assumed-role/R/S` → `arn:aws:iam::A:role/R`): every
    /// session of one role (one per ECS task or Lambda container) is one
    /// caller, so a retry from another session still finds its key.
    pub fn iam(user_arn: &str) -> Result<Self, PrincipalError> {
        let arn = user_arn.trim();
        if arn.is_empty() {
            return Err(PrincipalError::Missing);
        }
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let normalised = match parts.as_slice() {
            ["arn", partition, "sts", "", account, resource] => {
                match resource.strip_prefix("assumed-role/") {
                    Some(rest) => {
                        let role = rest.split('/').next().unwrap_or_default();
                        if role.is_empty() {
                            return Err(PrincipalError::Invalid("an assumed role without a name"));
                        }
                        format!("arn:{partition}:iam::{account}:role/{role}")
                    }
                    None => arn.to_owned(),
                }
            }
            _ => arn.to_owned(),
        };
        Self::checked(normalised)
    }

    /// A JWT caller: the issuer and the value of `claim`.
    pub fn jwt(issuer: &str, claim: &str, value: &str) -> Result<Self, PrincipalError> {
        if issuer.is_empty() {
            return Err(PrincipalError::MissingClaim("iss".into()));
        }
        if value.is_empty() {
            return Err(PrincipalError::MissingClaim(claim.to_owned()));
        }
        if issuer.contains('|') || claim.contains('|') {
            return Err(PrincipalError::Invalid("a '|' in the issuer"));
        }
        Self::checked(format!("jwt|{issuer}|{claim}|{value}"))
    }

    /// A principal as stored.
    pub fn from_stored(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    fn checked(text: String) -> Result<Self, PrincipalError> {
        if text.len() > MAX_LEN {
            return Err(PrincipalError::Invalid("longer than 1024 bytes"));
        }
        if text.chars().any(char::is_control) {
            return Err(PrincipalError::Invalid("a control character"));
        }
        Ok(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A short fixed-length name of the principal for keys: 32 hex digits of
    /// its SHA-256.
    pub fn scope(&self) -> String {
        Sha256::digest(self.0.as_bytes())[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_session_of_an_assumed_role_is_the_role() {
        let a = Principal::iam("arn:aws:sts::123456789012:assumed-role/web-shop/task-1").unwrap();
        let b = Principal::iam("arn:aws:sts::123456789012:assumed-role/web-shop/task-2").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "arn:aws:iam::123456789012:role/web-shop");
        let other =
            Principal::iam("arn:aws:sts::123456789012:assumed-role/support/task-1").unwrap();
        assert_ne!(a, other);
        assert_eq!(a.scope().len(), 32);
        assert_ne!(a.scope(), other.scope());
    }

    #[test]
    fn users_and_other_arns_are_kept_as_they_are() {
        let user = Principal::iam("arn:aws:iam::123456789012:user/alice").unwrap();
        assert_eq!(user.as_str(), "arn:aws:iam::123456789012:user/alice");
        let china = Principal::iam("arn:aws-cn:sts::1:assumed-role/r/s").unwrap();
        assert_eq!(china.as_str(), "arn:aws-cn:iam::1:role/r");
        assert_eq!(Principal::iam(" "), Err(PrincipalError::Missing));
        assert!(Principal::iam("arn:aws:sts::1:assumed-role//s").is_err());
    }

    #[test]
    fn jwt_callers_are_issuer_claim_and_value() {
        let a = Principal::jwt("https://issuer.example", "sub", "client-a").unwrap();
        assert_eq!(a.as_str(), "jwt|https://issuer.example|sub|client-a");
        let other_issuer = Principal::jwt("https://other.example", "sub", "client-a").unwrap();
        assert_ne!(a, other_issuer);
        let other_claim = Principal::jwt("https://issuer.example", "azp", "client-a").unwrap();
        assert_ne!(a, other_claim);
        assert_eq!(
            Principal::jwt("https://issuer.example", "client_id", ""),
            Err(PrincipalError::MissingClaim("client_id".into()))
        );
        assert!(Principal::jwt("", "sub", "x").is_err());
        assert!(Principal::jwt("https://a|b", "sub", "x").is_err());
        assert!(Principal::jwt("https://a", "sub", &"x".repeat(MAX_LEN)).is_err());
        assert!(Principal::jwt("https://a", "sub", "x\ny").is_err());
    }
}
