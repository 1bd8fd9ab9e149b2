/// Helpers for tests that drive SaslServer step by step.
module Pop3Functional.Simulator.Tests.SaslSteps

open Expecto
open Pop3Functional.Simulator

/// SaslServer.start, failing the test for an unknown mechanism.
let started ctx mechanism initial =
    match SaslServer.start ctx mechanism initial with
    | Ok step -> step
    | Error e -> failtestf "start %s: %s" mechanism e

/// The state and challenge of a step that must be a challenge.
let challenged step =
    match step with
    | SaslServerStep.Challenge(state, bytes) -> state, bytes
    | other -> failtestf "expected a challenge, got %A" other

/// Checks that the step authenticated this user.
let expectSucceeded user step =
    match step with
    | SaslServerStep.Succeeded u -> Expect.equal u user "authenticated user"
    | other -> failtestf "expected success as %s, got %A" user other

/// The reason of a step that must be a failure.
let expectFailed step =
    match step with
    | SaslServerStep.Failed reason -> reason
    | other -> failtestf "expected a failure, got %A" other
