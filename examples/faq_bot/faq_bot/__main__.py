from faq_bot.app import main

main()
