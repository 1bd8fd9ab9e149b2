namespace Pop3Functional.Core

module Say =
    let hello name =
        printfn "Hello %s" name
