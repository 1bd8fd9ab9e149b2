/// BenchmarkDotNet benchmarks: one invocation decodes a whole reply stream (8 MiB or 50 MiB), so
/// the per-iteration set-up (login and RETR submission) stays outside the measurement.
module Pop3Functional.Benchmarks.Benchmarks

open System
open BenchmarkDotNet.Attributes
open BenchmarkDotNet.Columns
open BenchmarkDotNet.Configs
open BenchmarkDotNet.Jobs
open BenchmarkDotNet.Reports
open BenchmarkDotNet.Running
open Pop3Functional.Core
open Pop3Functional.Benchmarks.Workload

/// The two streams of the issue: 2,000 × 4 KiB and 1 × 50 MiB, 76-octet lines, 1 in 20 stuffed.
let small = lazy (build "2000 x 4 KiB" 2000 4096 76 20)
let large = lazy (build "1 x 50 MiB" 1 (50 * 1024 * 1024) 76 20)

let private streamOf (case: BenchmarkCase) =
    if case.Descriptor.Categories |> Array.contains "50MiB" then
        large.Value
    else
        small.Value

/// MB/s (10^6 octets per second) of wire bytes, from the mean time per operation.
type ThroughputColumn() =
    interface IColumn with
        member _.Id = "Throughput"
        member _.ColumnName = "MB/s"
        member _.AlwaysShow = true
        member _.Category = ColumnCategory.Custom
        member _.PriorityInCategory = 0
        member _.IsNumeric = true
        member _.UnitType = UnitType.Dimensionless

        member _.Legend =
            "Wire octets decoded per second, in MB/s (10^6 octets), from the mean"

        member _.IsAvailable(_: Summary) = true
        member _.IsDefault(_: Summary, _: BenchmarkCase) = false

        member this.GetValue(summary: Summary, case: BenchmarkCase) =
            (this :> IColumn).GetValue(summary, case, SummaryStyle.Default)

        member _.GetValue(summary: Summary, case: BenchmarkCase, _: SummaryStyle) =
            match summary[case] with
            | null -> "-"
            | report when isNull report.ResultStatistics -> "-"
            | report ->
                let seconds = report.ResultStatistics.Mean / 1e9
                let mbps = float (streamOf case).Wire.Length / seconds / 1e6
                mbps.ToString("N0")

/// One invocation per iteration (the set-up builds a fresh logged-in session each time).
type Config() as this =
    inherit ManualConfig()

    do
        this.AddJob(Job.Default.WithInvocationCount(1).WithUnrollFactor(1)) |> ignore
        this.AddColumn(ThroughputColumn()) |> ignore
        this.AddLogicalGroupRules(BenchmarkLogicalGroupRule.ByCategory) |> ignore

[<MemoryDiagnoser>]
[<CategoriesColumn>]
[<Config(typeof<Config>)>]
type Decode() =
    let receive = Array.zeroCreate<byte> ChunkSize
    let mutable session = Unchecked.defaultof<SessionState>
    let mutable machine = Unchecked.defaultof<Pop3Machine>
    let mutable sent = 0

    [<GlobalSetup>]
    member _.Build() =
        small.Force() |> ignore
        large.Force() |> ignore

    [<IterationSetup(Target = "Session_2000x4KiB")>]
    member _.SetUpSmall() =
        let s, n = sessionReady small.Value
        session <- s
        sent <- n

    [<IterationSetup(Target = "Session_1x50MiB")>]
    member _.SetUpLarge() =
        let s, n = sessionReady large.Value
        session <- s
        sent <- n

    [<IterationSetup(Target = "Machine_2000x4KiB")>]
    member _.SetUpMachine() =
        let m, n = machineReady small.Value
        machine <- m
        sent <- n

    /// The baselines need no session, but take the same one-invocation job as the others
    /// (BenchmarkDotNet gives benchmarks with an IterationSetup InvocationCount=1), so that
    /// each category shares a job and gets its Ratio column.
    [<IterationSetup(Targets = [| "Baseline_2000x4KiB"; "Baseline_1x50MiB" |])>]
    member _.SetUpBaseline() = Array.Clear receive

    [<Benchmark(Baseline = true); BenchmarkCategory("4KiB")>]
    member _.Baseline_2000x4KiB() =
        (runBaseline small.Value receive).Bodies

    [<Benchmark; BenchmarkCategory("4KiB")>]
    member _.Session_2000x4KiB() =
        (runSession small.Value session sent receive).Bodies

    [<Benchmark; BenchmarkCategory("4KiB")>]
    member _.Machine_2000x4KiB() =
        (runMachine small.Value machine sent receive).Bodies

    [<Benchmark(Baseline = true); BenchmarkCategory("50MiB")>]
    member _.Baseline_1x50MiB() =
        (runBaseline large.Value receive).Bodies

    [<Benchmark; BenchmarkCategory("50MiB")>]
    member _.Session_1x50MiB() =
        (runSession large.Value session sent receive).Bodies

/// Runs BenchmarkDotNet with the given arguments (--filter '*', --job short, ...).
let run (args: string[]) =
    BenchmarkSwitcher.FromTypes([| typeof<Decode> |]).Run(args) |> ignore
