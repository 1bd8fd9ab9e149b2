module Pop3Functional.Core.Tests.RobustnessTests

open Expecto

[<Tests>]
let tests = testList "RobustnessTests" []
