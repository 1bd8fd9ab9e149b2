module Pop3Functional.Core.Tests.SessionTests

open Expecto

// Placeholder registered in the project; replaced by the real tests.
[<Tests>]
let tests = testList "SessionTests" []
