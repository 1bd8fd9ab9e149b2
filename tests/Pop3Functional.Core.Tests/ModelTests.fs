module Pop3Functional.Core.Tests.ModelTests

open Expecto

// Placeholder registered in the project; replaced by the real tests.
[<Tests>]
let tests = testList "ModelTests" []
