module Pop3Functional.Core.Tests.TranscriptTests

open Expecto

// Placeholder registered in the project; replaced by the real tests.
[<Tests>]
let tests = testList "TranscriptTests" []
