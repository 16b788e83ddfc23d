namespace Llama3.Multimodal.Demo.Tests;

public class ScoringTests
{
    [Theory]
    [InlineData("the red circle is on the left", "the red circle is on the left", 0.0)]
    [InlineData("the red circle is on the left", "The red circle is on the left!", 0.0)]
    [InlineData("the red circle is on the left", "the blue circle is left", 3.0 / 7)]      // 1 substitution + 2 deletions
    [InlineData("the number is forty two", "The number is 42.", 0.0)]
    [InlineData("i see two red circles", "i see two red red circles", 1.0 / 5)]          // 1 insertion
    [InlineData("the word is cat", "", 1.0)]
    [InlineData("a b c", "x y z w", 4.0 / 3)]
    public void WerOnKnownPairs(string reference, string hypothesis, double wer) =>
        Assert.Equal(wer, WordErrorRate.Compute(reference, hypothesis), 9);

    [Fact]
    public void CorpusWerSumsEditsOverReferenceWords()
    {
        Assert.Equal(1.0 / 6, WordErrorRate.Compute(new[] { "a b c", "d e f" }, new[] { "a b c", "d e g" }), 9);
        Assert.Equal("its a one hundred five year old star", EnglishNormalizer.Normalize("It's a 105-year-old   STAR?"));
        Assert.Throws<ArgumentException>(() => WordErrorRate.Compute(new[] { "a" }, Array.Empty<string>()));
    }

    [Fact]
    public void CaptionExactMatchAndPerAttributeAccuracy()
    {
        var refs = new[]
        {
            new ImageAttributes("single", "circle", "red", "large", "left", "one"),
            new ImageAttributes("count", "square", "blue", "small", null, "two"),
            new ImageAttributes("overlap", "star", "green", Shape2: "diamond", Colour2: "yellow"),
            new ImageAttributes("word", Size: "small", Text: "CAT"),
        };
        var refCaptions = refs.Select(ImageCaptionGrammar.Caption).ToArray();
        Assert.Equal(new[] { "a large red circle on the left", "two small blue squares", "a green star in front of a yellow diamond", "the word CAT" }, refCaptions);
        var preds = new[] { "A large red circle on the left.", "three small blue squares", "a yellow star in front of a green diamond", "the word cat" };
        Assert.Equal(0.5, CaptionScorer.ExactMatch(preds, refCaptions), 9);
        var acc = CaptionScorer.PerAttribute(preds, refs);
        Assert.Equal((3, 3), (acc["shape"].Correct, acc["shape"].Total));          // circle, square, star
        Assert.Equal(0, acc["colour2"].Correct);
        Assert.Equal((1, 2), (acc["count"].Correct, acc["count"].Total));
        Assert.Equal(1.0, acc["position"].Accuracy);
        Assert.Equal(1.0, acc["text"].Accuracy);
        Assert.Equal(2.0 / 3, acc["colour"].Accuracy, 9);
        var kinds = CaptionScorer.PerKind(preds, refCaptions);
        Assert.Equal(new[] { "count", "overlap", "single", "word" }, kinds.Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal((1, 1), (kinds["single"].Correct, kinds["single"].Total));
        Assert.Equal((0, 1), (kinds["count"].Correct, kinds["count"].Total));
        Assert.Equal(0.0, kinds["overlap"].Accuracy);
        Assert.Equal(1.0, kinds["word"].Accuracy);
        var digits = CaptionScorer.PerKind(new[] { "the number 74", "the number 47", "the word BOX" }, new[] { "the number 47", "the number 47", "the word BOX" });
        Assert.Equal((1, 2), (digits["number"].Correct, digits["number"].Total));
        // Every grammar caption parses back to its attributes.
        var rng = new Random(5);
        for (int i = 0; i < 300; i++)
        {
            var a = TextDataMaker.RandomAttributes(rng);
            var back = ImageCaptionGrammar.Parse(ImageCaptionGrammar.Caption(a));
            Assert.Equal(a.Captioned().ToList(), back.Captioned().ToList());
        }
    }

    [Fact]
    public void VideoAccuracyNeedsTheRightTimeOrder()
    {
        string r = "a red circle moves left then a blue square appears";
        Assert.Equal(1.0, VideoCaptionScorer.Accuracy(new[] { "A red circle moves left, then a blue square appears." .Replace(",", "") }, new[] { r }));
        Assert.Equal(0.0, VideoCaptionScorer.Accuracy(new[] { "a blue square appears then a red circle moves left" }, new[] { r }));
        Assert.Equal(0.0, VideoCaptionScorer.Accuracy(new[] { "a red circle moves right then a blue square appears" }, new[] { r }));
        Assert.Equal(0.0, VideoCaptionScorer.Accuracy(new[] { "gibberish" }, new[] { r }));
        string r2 = "a green star turns yellow then it moves up";
        Assert.Equal(1.0, VideoCaptionScorer.ReversedRate(new[] { "a green star moves up then it turns yellow" }, new[] { r2 }));
        Assert.Equal(0.5, VideoCaptionScorer.Accuracy(new[] { r2, "a green star moves up then it turns yellow" }, new[] { r2, r2 }));
        Assert.Throws<ArgumentException>(() => VideoCaptionScorer.Accuracy(new[] { r }, new[] { "not a caption" }));
    }

    [Fact]
    public void VideoPerPartScoresEachSlot()
    {
        var refs = new[] { "a red circle moves left then a blue square appears", "a green star turns yellow then it moves up", "a red circle appears then it disappears" };
        var preds = new[] { "a red square moves left then it disappears", "a green star turns yellow then it moves up", "gibberish" };
        var per = VideoCaptionScorer.PerPart(preds, refs);
        Assert.Equal(new[] { "colour", "shape", "event1", "subject2", "event2" }, per.Keys);
        Assert.Equal((2, 3), (per["colour"].Correct, per["colour"].Total));
        Assert.Equal(1, per["shape"].Correct);          // square ≠ circle; the unparsable prediction counts as wrong
        Assert.Equal(2, per["event1"].Correct);
        Assert.Equal(1, per["subject2"].Correct);       // "it" ≠ "a blue square"
        Assert.Equal(1, per["event2"].Correct);
        Assert.Equal(2.0 / 3, per["event1"].Accuracy, 12);
        Assert.Throws<ArgumentException>(() => VideoCaptionScorer.PerPart(new[] { "a red circle appears" }, new[] { "a red circle appears" }));
    }
}
