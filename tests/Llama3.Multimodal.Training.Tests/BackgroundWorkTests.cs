namespace Llama3.Multimodal.Training.Tests;

/// <summary>
/// Background data preparation must never run while a training thread executes tensor code outside a safe window
/// (TorchSharp's temporary scalars can be freed by a collection another thread starts).
/// </summary>
[Collection("BackgroundWork")]
public class BackgroundWorkTests
{
    [Fact]
    public void BackgroundWorkWaitsForAQuietWindowAndComputeWaitsForRunningWork()
    {
        int ran = 0;
        using var computeEntered = new ManualResetEventSlim();
        using var allowQuiet = new ManualResetEventSlim();
        using var quietOpen = new ManualResetEventSlim();
        using var closeQuiet = new ManualResetEventSlim();
        var trainer = Start(() =>
        {
            using var c = BackgroundWork.Compute();
            computeEntered.Set();
            allowQuiet.Wait();
            using (BackgroundWork.Quiet())
            {
                quietOpen.Set();
                closeQuiet.Wait();
            }
        });
        computeEntered.Wait();
        var work = Start(() => BackgroundWork.Run(() => Interlocked.Increment(ref ran), CancellationToken.None));
        Assert.False(work.Join(300));               // the training thread is computing: nothing runs
        Assert.Equal(0, Volatile.Read(ref ran));
        allowQuiet.Set();
        quietOpen.Wait();
        Assert.True(work.Join(10_000));             // inside the quiet window it runs
        Assert.Equal(1, ran);
        closeQuiet.Set();
        Assert.True(trainer.Join(10_000));
        // With no training thread computing, work runs at once; Quiet outside Compute is a no-op.
        using (BackgroundWork.Quiet()) Assert.Equal(2, BackgroundWork.Run(() => Interlocked.Increment(ref ran), CancellationToken.None));
    }

    static Thread Start(Action a)
    {
        var t = new Thread(() => a()) { IsBackground = true };
        t.Start();
        return t;
    }

    [Fact]
    public void WaitingBackgroundWorkIsCancellable()
    {
        using var cts = new CancellationTokenSource();
        using var entered = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        var trainer = Start(() =>
        {
            using var c = BackgroundWork.Compute();
            entered.Set();
            release.Wait();
        });
        entered.Wait();
        Exception? error = null;
        var work = Start(() =>
        {
            try { BackgroundWork.Run(() => 1, cts.Token); }
            catch (Exception e) { error = e; }
        });
        cts.Cancel();
        Assert.True(work.Join(10_000));
        Assert.IsAssignableFrom<OperationCanceledException>(error);
        release.Set();
        Assert.True(trainer.Join(10_000));
    }
}
