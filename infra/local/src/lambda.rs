//! What the Lambda service hands a handler besides its event: the
//! invocation context (a request id, the function's ARN, the deadline).
//! The runner builds one for every invocation; the tests and benchmarks
//! use the same builder.

use lambda_runtime::{Context, LambdaEvent};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The ARN every local invocation names.
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:local";

/// An invocation context whose deadline is `timeout` from now.
pub fn context(timeout: Duration) -> Context {
    let mut context = Context::default();
    context.request_id = format!("local-{}", uuid::Uuid::new_v4().simple());
    context.deadline = (SystemTime::now() + timeout)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    context.invoked_function_arn = FUNCTION_ARN.into();
    context
}

/// `payload` as one invocation with `timeout` to run.
pub fn event<T>(payload: T, timeout: Duration) -> LambdaEvent<T> {
    LambdaEvent::new(payload, context(timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_invocation_has_its_own_request_id_and_a_deadline_ahead() {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let a = context(Duration::from_secs(30));
        let b = context(Duration::from_secs(30));
        assert_ne!(a.request_id, b.request_id);
        assert!(a.deadline >= now_ms + 29_000 && a.deadline <= now_ms + 31_000);
        assert_eq!(a.invoked_function_arn, FUNCTION_ARN);
    }
}
