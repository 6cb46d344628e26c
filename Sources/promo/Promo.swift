import PromoCLI

@main
struct Promo {
    static func main() async {
        await PromoCommand.main()
    }
}
