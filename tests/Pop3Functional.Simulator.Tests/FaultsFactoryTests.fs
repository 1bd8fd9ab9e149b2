module Pop3Functional.Simulator.Tests.FaultsFactoryTests

open System
open Expecto
open Pop3Functional.Core
open Pop3Functional.Simulator
open Pop3Functional.Simulator.Tests.Loop

[<Tests>]
let tests =
    testList
        "Faults factory"
        [
            test "every named plan parses, case-insensitively; unknown names do not" {
                for name in Faults.Names do
                    match Faults.TryParse(name.ToUpperInvariant()) with
                    | true, plan -> Expect.equal plan.IsEmpty (name = "none") name
                    | false, _ -> failtest name

                Expect.isFalse (fst (Faults.TryParse "no-such-fault")) "unknown"
                Expect.isFalse (fst (Faults.TryParse null)) "null"
            }

            test "the factories build the union cases (no F# option needed from C#)" {
                Expect.equal
                    (Faults.ErrorReply(Faults.OnVerb("RETR", 2), "SYS/TEMP", "later"))
                    (Fault.ErrorReply(FaultTrigger.NthOfVerb("RETR", 2), Some "SYS/TEMP", "later"))
                    "with a code"

                Expect.equal
                    (Faults.ErrorReply(Faults.OnCommand 3, null, "no"))
                    (Fault.ErrorReply(FaultTrigger.NthCommand 3, None, "no"))
                    "without a code"
            }

            test "every named plan ends a real session with a result or a typed error, never a hang or an exception" {
                for name in Faults.Names do
                    let _, plan = Faults.TryParse name
                    let boxes = Mailboxes()
                    let box = boxes.Mailbox("alice", "secret")

                    for i in 1..3 do
                        box.Add($"Subject: {i}\n\n" + String.replicate 40 "a line of text\n") |> ignore

                    let options = (ServerOptions.Create Personalities.simulator).WithFaults plan
                    use conn = new ServerConnection(options, boxes, Transcript(), 1, false, true)

                    let client =
                        { plainClient with
                            Limits = plainClient.Limits.WithMaxMessageOctets(Nullable 100_000UL)
                        }

                    let r =
                        run
                            client
                            conn
                            (Random 3)
                            [
                                [ Request.User "alice" ]
                                [ Request.Pass(Secret.FromString "secret") ]
                                [ Request.List None; Request.Uidl None ]
                                [ Request.Retr 1UL; Request.Retr 2UL; Request.Retr 3UL ]
                                [ Request.Quit ]
                            ]

                    // Either the session reached QUIT, or a typed failure/abort says why.
                    let quit =
                        r.Events
                        |> List.exists (function
                            | Event.Answered(_, Reply.Quit _) -> true
                            | _ -> false)

                    let typed =
                        r.Events
                        |> List.exists (function
                            | Event.Failed _
                            | Event.Aborted _
                            | Event.Rejected _ -> true
                            | _ -> false)

                    Expect.isTrue (quit || typed || r.ServerHung) $"{name}: an outcome"

                    if name = "none" then
                        Expect.isTrue quit "an honest server completes"
            }
        ]
