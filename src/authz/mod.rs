//! Authorization on the session's claims: who may sign in at all (`[authorization] require`,
//! judged at the login callback), who may reach a route (`routes[].require`, and `acr_values`
//! for step-up, judged in the pipeline's authorization phase after the session lookup), and
//! what an upstream learns about the user (`claim_headers`).
//!
//! Claims are the validated ID token's, kept sealed in the session and replaced when a refresh
//! returns a new ID token. Nothing here reads the request: a client cannot claim anything.

pub mod assertion;
pub mod claim_headers;
pub mod rules;
