using Xunit;
namespace Pop3Functional.Core.CSharp.Tests;
public class Pop3MachineTests
{
    [Fact]
    public void Trivial() => Assert.True(true);
}
