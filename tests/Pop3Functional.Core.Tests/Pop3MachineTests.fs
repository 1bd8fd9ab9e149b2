module Pop3Functional.Core.Tests.Pop3MachineTests

open Expecto

// Placeholder registered in the project; replaced by the real tests.
[<Tests>]
let tests = testList "Pop3MachineTests" []
