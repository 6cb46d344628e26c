import PromoCLI

PromoCommand.main()
