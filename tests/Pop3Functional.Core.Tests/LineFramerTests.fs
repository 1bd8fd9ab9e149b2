module Pop3Functional.Core.Tests.LineFramerTests

open Expecto

// Placeholder registered in the project; replaced by the real tests.
[<Tests>]
let tests = testList "LineFramerTests" []
